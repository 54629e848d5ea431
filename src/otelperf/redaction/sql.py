"""SQL text for telemetry: literals out, shape in.

:func:`sanitize` turns a statement into the text that may leave the process as ``db.query.text``:
every literal (strings, dollar-quoted bodies, numbers, booleans) becomes ``?``, comments are
removed (they can carry secrets too), whitespace is collapsed. Bind placeholders (``$1``, ``:name``,
``%s``, ``%(name)s``, ``?``), identifiers (``t1``, ``col_2``, ``"Quoted 1"``) and ``NULL`` stay, so
the result still reads as the query and groups equal queries together.

:func:`operation_and_collection` extracts the verb and the main table (``("SELECT", "users")``)
for span names and metric attributes.

Both are on the hot path of every database call, so the lexer is one precompiled regex and results
are kept in bounded LRU caches (statements built by an ORM repeat; text with inlined literals does
not, and simply evicts). The lexer is deliberately forgiving: anything it cannot close (an
unterminated string or dollar quote) is replaced up to the end, so a malformed statement errs
on the side of hiding text, never of leaking it; so does text where a backslash precedes a quote,
which is read both with and without backslash escapes.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["MAX_QUERY_TEXT_LENGTH", "TRUNCATION_MARKER", "operation_and_collection", "sanitize"]

# Statements up to this length are cached; longer ones (bulk inserts with inlined values...) are
# sanitized every time, from at most _MAX_SCANNED characters, and the result is truncated.
MAX_CACHED_LENGTH = 4096
MAX_QUERY_TEXT_LENGTH = 4096
TRUNCATION_MARKER = " ...[truncated]"
_MAX_SCANNED = 4 * MAX_QUERY_TEXT_LENGTH
_CACHE_SIZE = 2048

# The lexer is one alternation, scanned left to right: the earliest alternative that matches at a
# position wins, and every construct that may contain another one's opener (a quote inside a
# comment, "--" inside a string) is consumed whole. Each alternative starts with one literal
# character and carries no group before it: then the regex engine skips positions that cannot
# start anything by a set lookup, and tries only the alternatives for the character at hand (several
# times faster than the readable version with named groups and leading lookbehinds).
#
# "Not in the middle of a word" is a lookbehind placed *after* that first character: t1, col_2,
# $1, :1 and ?1 keep their digits, and name'x' is not an N-string.
_WORD_BEFORE = r"[\w$:?@]"
_NOT_BEFORE_WORD = r"(?![\w$])"
_EXPONENT = r"(?:[eE][+-]?\d+)?"
_STD_STRING_BODY = r"'[^']*(?:''[^']*)*(?:'|\Z)"  # '' escapes a quote; a backslash is a character
_BACKSLASH_STRING_BODY = r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\Z)"


def _lexer(mysql: bool) -> re.Pattern[str]:
    string_body = _BACKSLASH_STRING_BODY if mysql else _STD_STRING_BODY
    alts = [
        r"--[^\n]*",
        r"/\*.*?(?:\*/|\Z)",
        # $$...$$ and $tag$...$tag$ (never $1, whose "tag" would start with a digit)
        r"\$(?<![\w$]\$)((?:[^\W\d]\w*)?)\$.*?(?:\$\1\$|\Z)",
        string_body,
        r"`[^`]*(?:`|\Z)",
        r"\.(?<!" + _WORD_BEFORE + r"\.)\d+" + _EXPONENT + _NOT_BEFORE_WORD,
        r"0(?<!" + _WORD_BEFORE + r"0)[xX][0-9a-fA-F]+" + _NOT_BEFORE_WORD,
    ]
    if mysql:
        alts += [r"\#[^\n]*", r'"[^"\\]*(?:(?:\\.|"")[^"\\]*)*(?:"|\Z)']
    else:
        alts.append(r'"[^"]*(?:""[^"]*)*(?:"|\Z)')
        alts += [u + r"&(?<![\w$]" + u + "&)" + _STD_STRING_BODY for u in "Uu"]
    for prefix in "EeNnXxBb":
        # E'..' (PostgreSQL escape string) always honours backslashes.
        body = _BACKSLASH_STRING_BODY if prefix in "Ee" else string_body
        alts.append(prefix + r"(?<![\w$]" + prefix + ")" + body)
    for digit in "0123456789":
        alts.append(digit + r"(?<!" + _WORD_BEFORE + digit + r")\d*\.?\d*" + _EXPONENT + _NOT_BEFORE_WORD)
    for first, rest in (("t", "rue"), ("T", "rue"), ("f", "alse"), ("F", "alse")):
        any_case = "".join(f"[{c}{c.upper()}]" for c in rest)
        alts.append(first + r"(?<!" + _WORD_BEFORE + first + ")" + any_case + _NOT_BEFORE_WORD)
    return re.compile("|".join(alts), re.DOTALL)


_STANDARD_RE = _lexer(mysql=False)
_MYSQL_RE = _lexer(mysql=True)


# What each match becomes, by its first character: quoted identifiers stay, comments become a
# space, everything else is a literal.
_KEEP_STANDARD = frozenset('"`')
_KEEP_MYSQL = frozenset("`")  # in MySQL "..." is a string
_COMMENT_START = frozenset("-/#")


def _replace_standard(match: re.Match[str]) -> str:
    text = match.group()
    first = text[0]
    if first in _KEEP_STANDARD:
        return text
    return " " if first in _COMMENT_START else "?"


def _replace_mysql(match: re.Match[str]) -> str:
    text = match.group()
    first = text[0]
    if first in _KEEP_MYSQL:
        return text
    return " " if first in _COMMENT_START else "?"


# --- the slow path: nested comments and double quotes in value positions -----------------------
#
# PostgreSQL nests block comments (/* a /* b */ still comment */), which no regex can follow, and
# SQLite (and PostgreSQL, by mistake in an app) reads "..." as a string where a column name would
# not fit. Both need a scan that keeps state, so statements containing "/*" or a double quote take
# it; the others (most statements of most apps) keep the single re.sub above. Results are cached
# per statement either way.

# Tokens of the SQL text between literals: words, two-character operators, single characters.
_CODE_TOKEN_RE = re.compile(r"[^\W\d][\w$]*|<>|!=|<=|>=|==|\|\||::|[^\s\w]")
# After these a double-quoted text is a value: comparisons, concatenation and value keywords.
_VALUE_BEFORE = frozenset({
    "=", "==", "<>", "!=", "<", ">", "<=", ">=", "||", "LIKE", "ILIKE", "GLOB", "REGEXP", "RLIKE",
    "MATCH", "BETWEEN", "THEN", "ELSE", "DEFAULT", "ESCAPE", "TO", "IS", "VALUES", "IN",
})  # fmt: skip
# After these it names something (a table, a column, an alias, an index...).
_NAME_BEFORE = frozenset({
    "FROM", "JOIN", "INTO", "UPDATE", "TABLE", "AS", "ON", "INDEX", "REFERENCES", "BY", "SELECT",
    "DISTINCT", "SET", "WHERE", "AND", "OR", "NOT", "EXISTS", "USING", "RETURNING", "CONFLICT", ".",
})  # fmt: skip
# A "(" after these opens a list of values.
_VALUE_LIST_BEFORE = frozenset(("VALUES", "IN"))


# Words that change the scan's state beyond being "the previous token".
_STATE_WORDS = frozenset(("SELECT", "WITH", "BETWEEN", "AND"))


class _Context:
    """Where the scan is: the previous tokens, and which open parentheses hold values."""

    __slots__ = ("before", "between", "prev", "row_closed", "stack")

    def __init__(self) -> None:
        self.prev = ""  # upper-case word, operator, "?" (a literal) or "NAME" (a quoted name)
        self.before = ""  # the token before ``prev``: says whether a word stood where a value goes
        self.stack: list[bool] = []  # per open parenthesis: does it hold values?
        self.row_closed = False  # a ")" closing a list of values was the last token(s): VALUES (..), (..)
        self.between = False

    def value_after(self, prev: str) -> bool:
        """Whether a token after ``prev`` stands where a value goes."""
        if prev in _VALUE_BEFORE:
            return True
        if prev == "AND" and self.between:
            return True
        if prev in _NAME_BEFORE:
            return False
        return prev in ("(", ",") and bool(self.stack) and self.stack[-1]

    def value_here(self) -> bool:
        """Whether the next token stands where a value goes."""
        return self.value_after(self.prev)

    def feed_code(self, code: str) -> None:
        # Per token of every statement with a double quote (on a cache miss): plain words, dots
        # and commas, most of the tokens, are handled inline; the rest goes through feed().
        prev, before = self.prev, self.before
        for raw in _CODE_TOKEN_RE.findall(code):
            token = raw
            first = token[0]
            if first.isalpha() or first == "_":
                token = raw.upper()
                if token not in _STATE_WORDS:
                    self.row_closed = False
                    before, prev = prev, token
                    continue
            elif first == ".":
                self.row_closed = False
                before, prev = prev, "."
                continue
            elif first == ",":
                before, prev = prev, ","
                continue
            self.prev, self.before = prev, before
            self.feed(token)
            prev, before = self.prev, self.before
        self.prev, self.before = prev, before

    def feed(self, token: str) -> None:
        prev = self.prev
        if token == "(":
            holds_values = (
                prev in _VALUE_LIST_BEFORE
                or self.value_after(prev)
                or (prev == "," and self.row_closed)
                or ((prev.isidentifier() or prev == "NAME") and self.value_after(self.before))
            )
            self.stack.append(holds_values)
            self.row_closed = False
        elif token == ")":
            self.row_closed = bool(self.stack) and self.stack.pop()
        elif token != ",":
            self.row_closed = False
            if token in ("SELECT", "WITH") and self.stack:
                self.stack[-1] = False  # a subquery: names again
            if token == "BETWEEN":
                self.between = True
            elif token == "AND" and self.between:
                self.between = False
                token = "="  # the upper bound is a value too
        self.before, self.prev = prev, token


def _nested_comment_end(statement: str, start: int) -> int:
    """End of the block comment opened at ``start``, nested ones included (or the end of text)."""
    depth = 0
    i = start
    while True:
        close = statement.find("*/", i)
        if close < 0:
            return len(statement)
        opening = statement.find("/*", i)
        if 0 <= opening < close:
            depth += 1
            i = opening + 2
        else:
            depth -= 1
            i = close + 2
            if depth <= 0:
                return i


def _double_quoted_is_value(statement: str, end: int, context: _Context) -> bool:
    if context.prev == ".":
        return False
    rest = statement[end : end + 64].lstrip()
    if rest.startswith(".") and not rest[1:2].isdigit():
        return False  # "user".id: a qualified name
    return context.value_here()


def _scan(statement: str, mysql: bool) -> list[tuple[int, int, str]]:
    """The (start, end, replacement) of every literal and comment, statefully (see above)."""
    pattern = _MYSQL_RE if mysql else _STANDARD_RE
    keep = _KEEP_MYSQL if mysql else _KEEP_STANDARD
    context = _Context()
    spans: list[tuple[int, int, str]] = []
    position = 0
    # Past the last double quote and block comment nothing needs the context: the rest (often
    # the long part, a VALUES list) is lexed statelessly, as by the fast path.
    tail = max(statement.rfind('"'), statement.rfind("/*")) + 1
    match = pattern.search(statement)
    while match is not None:
        start, end = match.span()
        if start >= tail:
            for rest in pattern.finditer(statement, start):
                first = statement[rest.start()]
                if first not in keep:
                    spans.append((rest.start(), rest.end(), " " if first in _COMMENT_START else "?"))
            break
        context.feed_code(statement[position:start])
        first = statement[start]
        if statement.startswith("/*", start):
            end = _nested_comment_end(statement, start)
            spans.append((start, end, " "))
        elif first in _COMMENT_START:
            spans.append((start, end, " "))
        elif first == '"' and first in keep:
            if _double_quoted_is_value(statement, end, context):
                spans.append((start, end, "?"))
                context.feed("?")
            else:
                context.feed("NAME")
        elif first in keep:
            context.feed("NAME")
        else:
            spans.append((start, end, "?"))
            context.feed("?")
        position = end
        match = pattern.search(statement, end)
    return spans


def _assemble(statement: str, spans: list[tuple[int, int, str]]) -> str:
    """Apply sorted, possibly overlapping spans; an overlap with a literal hides as a literal."""
    merged: list[list[Any]] = []
    for start, end, replacement in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], end)
            if replacement == "?":
                last[2] = "?"
        else:
            merged.append([start, end, replacement])
    parts: list[str] = []
    position = 0
    for start, end, replacement in merged:
        parts.append(statement[position:start])
        parts.append(replacement)
        position = end
    parts.append(statement[position:])
    return " ".join("".join(parts).split())


def _sanitize_ambiguous(statement: str) -> str:
    """Hide what either reading hides, for text where a backslash stands before a quote.

    Whether ``\\'`` escapes the quote depends on the server (MySQL unless NO_BACKSLASH_ESCAPES,
    PostgreSQL with standard_conforming_strings off) and guessing wrong shows the rest of the
    string as plain text: ``'it\\'s secret'`` read the standard way leaves ``s secret`` outside
    any string, and ``'C:\\', 'secret'`` read the MySQL way leaves ``secret`` outside. So both
    readings run, and a character is shown only when it is outside literals in both.
    """
    return _assemble(statement, _scan(statement, mysql=False) + _scan(statement, mysql=True))


# --- SET statements: the value of a setting can be a secret (SET app.api_key = abc) ------------

_SET_START_RE = re.compile(r"(?:^|;)\s*SET\s", re.IGNORECASE)
# Words after which a SET statement without "=" / TO names a value: SET ROLE admin.
_SET_VALUE_AFTER = frozenset(("ROLE", "AUTHORIZATION", "NAMES", "ZONE", "CHARSET", "SCHEMA"))
_SET_ASSIGN_RE = re.compile(r"(=|\bTO\b)", re.IGNORECASE)


def _mask_set_item(item: str, continued: bool) -> str:
    """One comma-separated part of a SET statement with its value replaced by ``?``."""
    found = _SET_ASSIGN_RE.search(item)
    if found is not None:
        return item[: found.end()] + " ?"
    if continued:
        return " ?"  # SET search_path TO a, b: 'b' continues the value list
    words = item.split()
    for index, word in enumerate(words[:-1]):
        if word.upper() in _SET_VALUE_AFTER:
            return " ".join([*words[: index + 1], "?"])
    return item


def _mask_set(text: str) -> str:
    """``SET x = v`` / ``SET x TO v`` / ``SET ROLE v``: the values of SET statements become ``?``."""
    out: list[str] = []
    for statement in text.split(";"):
        if statement.lstrip()[:4].upper() != "SET ":
            out.append(statement)
            continue
        items = statement.split(",")
        masked = [_mask_set_item(items[0], continued=False)]
        assigned = _SET_ASSIGN_RE.search(items[0]) is not None
        for item in items[1:]:
            pairs = _SET_ASSIGN_RE.search(item) is not None
            masked.append(_mask_set_item(item, continued=assigned and not pairs))
        out.append(",".join(masked))
    return " ".join(";".join(out).split())


def _sanitize(statement: str, mysql: bool) -> str:
    if "\\'" in statement or '\\"' in statement:
        text = _sanitize_ambiguous(statement)
    elif "/*" in statement or (not mysql and '"' in statement):
        text = _assemble(statement, _scan(statement, mysql))
    elif mysql:
        text = " ".join(_MYSQL_RE.sub(_replace_mysql, statement).split())
    else:
        text = " ".join(_STANDARD_RE.sub(_replace_standard, statement).split())
    if _SET_START_RE.search(text) is not None:
        text = _mask_set(text)
    return text


@lru_cache(maxsize=_CACHE_SIZE)
def _sanitize_cached(statement: str, mysql: bool) -> str:
    return _sanitize(statement, mysql)


def sanitize(statement: str, *, mysql: bool = False) -> str:
    """Return ``statement`` with every literal replaced by ``?`` and comments removed.

    >>> sanitize("SELECT * FROM t1 WHERE name = 'bob' AND age > 42 -- note")
    'SELECT * FROM t1 WHERE name = ? AND age > ?'

    ``mysql=True`` lexes MySQL/MariaDB text: ``"..."`` is a string rather than an identifier,
    ``#`` starts a comment. A backslash before a quote is ambiguous in every dialect (it depends
    on server settings), so such text is read both ways and whatever either way calls a literal
    is hidden. Results longer than :data:`MAX_QUERY_TEXT_LENGTH` are cut and end with
    :data:`TRUNCATION_MARKER`.
    """
    if len(statement) <= MAX_CACHED_LENGTH:
        return _sanitize_cached(statement, mysql)
    # Cutting the input first is safe: a literal cut in half is unterminated and the lexer
    # replaces an unterminated literal up to the end.
    text = _sanitize(statement[:_MAX_SCANNED], mysql)
    if len(statement) > _MAX_SCANNED or len(text) > MAX_QUERY_TEXT_LENGTH:
        text = text[: MAX_QUERY_TEXT_LENGTH - len(TRUNCATION_MARKER)].rstrip() + TRUNCATION_MARKER
    return text


# --- operation and collection -------------------------------------------------------------------

# Verbs reported as db.operation.name. A closed set: the first word of arbitrary text must not
# become a metric attribute value (cardinality), so anything else reports no operation.
_VERBS = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "VALUES", "TABLE", "BEGIN",
    "START", "COMMIT", "ROLLBACK", "END", "SAVEPOINT", "RELEASE", "PREPARE", "EXECUTE", "EXEC",
    "DEALLOCATE", "CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME", "GRANT", "REVOKE", "COMMENT", "SET",
    "RESET", "SHOW", "USE", "DESCRIBE", "DESC", "EXPLAIN", "ANALYZE", "VACUUM", "REINDEX", "CLUSTER",
    "REFRESH", "PRAGMA", "ATTACH", "DETACH", "CALL", "DO", "COPY", "LOCK", "UNLOCK", "LISTEN", "NOTIFY",
    "UNLISTEN", "DECLARE", "FETCH", "MOVE", "CLOSE", "DISCARD", "CHECKPOINT", "LOAD", "HANDLER",
})  # fmt: skip
_DML = frozenset(("SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "UPSERT"))
_DDL_OBJECT_TABLE = frozenset(("CREATE", "DROP", "ALTER"))
# Words between the verb and the table that are not the table.
_SKIP_BEFORE_TABLE = frozenset({
    "ONLY", "OR", "IGNORE", "ABORT", "FAIL", "ROLLBACK", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY",
    "QUICK", "TOP", "IF", "NOT", "EXISTS", "LATERAL",
})  # fmt: skip
_TABLE_MODIFIERS = frozenset(("TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL", "OR", "REPLACE"))

_TOKEN_RE = re.compile(r'"[^"]*(?:""[^"]*)*"|`[^`]*`|\[[^\]]*\]|[^\W\d][\w$]*|[().;]')
_PUNCT = frozenset(("(", ")", ".", ";"))


_FROM = frozenset(("FROM",))
_INTO = frozenset(("INTO",))


def _qualified_name(tokens: list[str], i: int, *, after_from: bool) -> str | None:
    """The (possibly schema-qualified) name starting at ``tokens[i]``, or None if there is none."""
    if i >= len(tokens) or tokens[i] in _PUNCT:
        return None
    name = tokens[i]
    i += 1
    while i + 1 < len(tokens) and tokens[i] == "." and tokens[i + 1] not in _PUNCT:
        name += "." + tokens[i + 1]
        i += 2
    if after_from and i < len(tokens) and tokens[i] == "(":
        return None  # FROM generate_series(...): a function, not a table
    return name


def _word_at_depth0(tokens: list[str], start: int, words: frozenset[str]) -> int:
    """Index of the first token in ``words`` outside parentheses, from ``start``; -1 if none."""
    depth = 0
    for i in range(start, len(tokens)):
        tok = tokens[i]
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth -= 1
        elif tok == ";" and depth <= 0:
            return -1
        elif depth <= 0 and tok.upper() in words:
            return i
    return -1


def _collection(tokens: list[str], verb_index: int, verb: str) -> str | None:
    i = verb_index + 1
    after_from = False
    if verb in ("SELECT", "DELETE"):
        j = _word_at_depth0(tokens, i, _FROM)
        if j < 0:
            return None
        i, after_from = j + 1, True
    elif verb in ("INSERT", "REPLACE", "MERGE", "UPSERT"):
        j = _word_at_depth0(tokens, i, _INTO)
        i = j + 1 if j >= 0 else i
    elif verb in _DDL_OBJECT_TABLE:
        while i < len(tokens) and tokens[i].upper() in _TABLE_MODIFIERS:
            i += 1
        if i >= len(tokens) or tokens[i].upper() != "TABLE":
            return None
        i += 1
    elif verb == "TRUNCATE":
        if i < len(tokens) and tokens[i].upper() == "TABLE":
            i += 1
    elif verb != "UPDATE":
        return None
    while i < len(tokens) and tokens[i].upper() in _SKIP_BEFORE_TABLE:
        i += 1
    return _qualified_name(tokens, i, after_from=after_from)


@lru_cache(maxsize=_CACHE_SIZE)
def _operation_and_collection(statement: str, mysql: bool) -> tuple[str | None, str | None]:
    tokens = _TOKEN_RE.findall(sanitize(statement, mysql=mysql))
    # A statement may start with parentheses: (SELECT ...) UNION (SELECT ...)
    i = 0
    while i < len(tokens) and tokens[i] == "(":
        i += 1
    if i >= len(tokens):
        return None, None
    verb = tokens[i].upper()
    if verb == "WITH":
        # The main verb of a CTE statement is the first DML word outside the CTE bodies.
        j = _word_at_depth0(tokens, i + 1, _DML)
        if j < 0:
            return "WITH", None
        i, verb = j, tokens[j].upper()
    if verb not in _VERBS:
        return None, None
    return verb, _collection(tokens, i, verb)


def operation_and_collection(statement: str, *, mysql: bool = False) -> tuple[str | None, str | None]:
    """Return the SQL verb and the main table of ``statement``, each None when not found.

    >>> operation_and_collection("SELECT id FROM public.users WHERE id = $1")
    ('SELECT', 'public.users')

    The verb is upper-case and one of a fixed set (``WITH ... UPDATE t`` reports ``UPDATE``); the
    table is the first one named after FROM / INTO / UPDATE / TABLE, as written (schema prefix and
    quotes included, as the semantic conventions ask). ``mysql`` as for :func:`sanitize`.
    """
    return _operation_and_collection(statement[:MAX_CACHED_LENGTH], mysql)
