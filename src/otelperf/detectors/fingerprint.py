"""SQL fingerprints: the same query with different values is one query.

:func:`normalize` turns a statement (usually a span's ``db.query.text``, already sanitized by
:func:`otelperf.redaction.sql.sanitize`) into its shape; :func:`fingerprint` names that shape with a short,
stable hex string. Every detector that groups statements uses these two, so a slow query, an
N+1 and a budget's top offender agree on what "the same statement" is.

    >>> normalize("select * from Orders where id in ($1, $2, $3)  and paid = true")
    'SELECT * FROM orders WHERE id IN (?) AND paid = ?'

What folds: every placeholder style (``$1``, ``:name``, ``%s``, ``%(name)s``, ``?``, ``?1``,
``@p1``) and every literal become ``?``; ``IN (...)`` lists of any length become ``IN (?)``;
identical ``VALUES`` rows become one; savepoint names become ``?``; whitespace is canonical;
keywords are upper-case and unquoted identifiers lower-case (unquoted names are case-insensitive
in SQL). Quoted identifiers are kept as written: ``"Order"`` and ``order`` are different tables.

Both functions are LRU-cached: an application runs a few hundred distinct statements, so after
warm-up a lookup is a dict hit. Statements longer than the cache limit are normalized each time.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from otelperf.redaction.sql import MAX_CACHED_LENGTH, sanitize

__all__ = ["fingerprint", "normalize", "statement_fingerprint"]

_CACHE_SIZE = 4096

# One token per match; the order of alternatives matters ("::" before ":name", "?1" before "?").
_TOKEN_RE = re.compile(
    r"""
    (?P<quoted>"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?)
  | (?P<param>%\(\w+\)s|%s|\$\d+|::|:[^\W\d]\w*|:\d+|\?\d*|@[^\W\d]\w*)
  | (?P<word>[^\W\d][\w$]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<op><>|!=|<=|>=|\|\||->>|->|\#>>|\#>|@>|<@|&&|[^\s\w])
    """,
    re.VERBOSE,
)

# Upper-cased on output. Not a full SQL grammar: enough that keyword case never splits a
# fingerprint. Words often used as column names (name, type, key, value, status, date...) are left
# out on purpose, so that they read as identifiers in hints.
_KEYWORDS = frozenset({
    "ALL", "ALTER", "ANALYZE", "AND", "ANY", "ARRAY", "AS", "ASC", "ASYMMETRIC", "BEGIN", "BETWEEN",
    "BY", "CALL", "CASCADE", "CASE", "CAST", "CHECK", "CLOSE", "COLLATE", "COMMIT", "CONCURRENTLY",
    "CONFLICT", "CONSTRAINT", "CREATE", "CROSS", "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP",
    "CURSOR", "DECLARE", "DEFAULT", "DEFERRABLE", "DELETE", "DESC", "DISTINCT", "DO", "DROP", "ELSE",
    "END", "ESCAPE", "EXCEPT", "EXISTS", "EXPLAIN", "FALSE", "FETCH", "FILTER", "FIRST", "FOLLOWING",
    "FOR", "FOREIGN", "FORWARD", "FROM", "FULL", "GRANT", "GROUP", "HAVING", "IF", "ILIKE", "IN",
    "INDEX", "INNER", "INSERT", "INTERSECT", "INTERVAL", "INTO", "IS", "ISNULL", "JOIN", "LAST",
    "LATERAL", "LEFT", "LIKE", "LIMIT", "LOCK", "MATERIALIZED", "MERGE", "MOVE", "NATURAL", "NEXT",
    "NO", "NOT", "NOTHING", "NOTNULL", "NOWAIT", "NULL", "NULLS", "OF", "OFFSET", "ON", "ONLY", "OR",
    "ORDER", "OUTER", "OVER", "PARTITION", "PRECEDING", "PRIMARY", "RANGE", "RECURSIVE", "REFERENCES",
    "RELEASE", "REPLACE", "RETURNING", "RIGHT", "ROLLBACK", "ROW", "ROWS", "SAVEPOINT", "SELECT", "SET",
    "SHARE", "SIMILAR", "SKIP", "SOME", "START", "SYMMETRIC", "TABLE", "TEMPORARY", "THEN", "TIES",
    "TO", "TRANSACTION", "TRUE", "TRUNCATE", "UNBOUNDED", "UNION", "UNIQUE", "UPDATE", "USING",
    "VALUES", "VIEW", "WHEN", "WHERE", "WINDOW", "WITH", "WITHIN", "WITHOUT", "COUNT", "SUM", "AVG",
    "MIN", "MAX", "COALESCE", "NULLIF", "GREATEST", "LEAST", "LOWER", "UPPER", "EXTRACT",
})  # fmt: skip
# Keywords written like functions: no space before their "(".
_CALL_KEYWORDS = frozenset({
    "COUNT", "SUM", "AVG", "MIN", "MAX", "COALESCE", "NULLIF", "GREATEST", "LEAST", "LOWER", "UPPER",
    "EXTRACT", "CAST", "ANY", "ARRAY",
})  # fmt: skip
_NO_SPACE_BEFORE = frozenset((",", ")", ".", ";", "]", "::"))
_NO_SPACE_AFTER = frozenset(("(", ".", "[", "::"))

# On the canonical text (single spaces, "(?, ?)"), so each is one cheap pass per distinct statement.
_IN_LIST_RE = re.compile(r"\bIN \((\?|\((?:\?, )*\?\))(?:, \1)*\)")
# sanitize() cuts very long text (a bulk IN list) and marks it; the list is still a list.
_IN_TRUNCATED_RE = re.compile(r"\bIN \(\?(?:, \?)*,?\.\.\.\[truncated\]$")
_VALUES_ROWS_RE = re.compile(r"\bVALUES (\([^()]*\))(?:, \1)+")
_SAVEPOINT_RE = re.compile(r'\b(SAVEPOINT|RELEASE|ROLLBACK TO) (?!SAVEPOINT\b)(?:"(?:[^"]|"")*"|[\w$]+)')
_NEGATIVE_RE = re.compile(r"(^|[=<>(,]|\b[A-Z]+) - \?")


def _canonical(text: str) -> str:
    out: list[str] = []
    previous = ""  # the previous token as emitted
    previous_is_name = False  # an identifier or a function-like keyword: "f(" stays tight
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        token = match.group()
        is_name = False
        if kind == "word":
            upper = token.upper()
            if upper in _KEYWORDS:
                token = upper
                is_name = upper in _CALL_KEYWORDS
            else:
                token = token.lower()
                is_name = True
        elif kind == "quoted":
            is_name = True
        elif kind == "number" or (kind == "param" and token != "::"):
            token = "?"
        if out:
            tight = (
                token in _NO_SPACE_BEFORE
                or previous in _NO_SPACE_AFTER
                or (token == "(" and previous_is_name)
                or (token[0] == "[" and previous_is_name)
            )
            if not tight:
                out.append(" ")
        out.append(token)
        previous, previous_is_name = token, is_name
    while out and out[-1] in (";", " "):
        out.pop()
    return "".join(out)


def _normalize(statement: str) -> str:
    text = _canonical(sanitize(statement))
    if "?" in text:
        text = _NEGATIVE_RE.sub(r"\1 ?", text) if " - ?" in text else text
        if "IN (" in text:
            text = _IN_LIST_RE.sub(r"IN (\1)", text)
            if text.endswith("...[truncated]"):
                text = _IN_TRUNCATED_RE.sub("IN (?) ...[truncated]", text)
        if "VALUES (" in text:
            text = _VALUES_ROWS_RE.sub(r"VALUES \1", text)
    if "SAVEPOINT" in text or "RELEASE" in text or "ROLLBACK TO" in text:
        text = _SAVEPOINT_RE.sub(r"\1 ?", text)
    return text.lstrip()


@lru_cache(maxsize=_CACHE_SIZE)
def _normalize_cached(statement: str) -> str:
    return _normalize(statement)


def normalize(statement: str) -> str:
    """The shape of ``statement``: values, list lengths, names of savepoints, case and spacing folded.

    >>> normalize("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')")
    'INSERT INTO t(a, b) VALUES (?, ?)'
    >>> normalize("RELEASE SAVEPOINT sa_savepoint_3")
    'RELEASE SAVEPOINT ?'
    """
    if len(statement) <= MAX_CACHED_LENGTH:
        return _normalize_cached(statement)
    return _normalize(statement)


@lru_cache(maxsize=_CACHE_SIZE)
def fingerprint(normalized: str) -> str:
    """A short stable name for a normalized statement (16 hex digits of BLAKE2b).

    Stable across processes and versions of Python (unlike ``hash()``), so it can be a metric
    attribute and be compared between services.
    """
    return hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def statement_fingerprint(statement: str) -> tuple[str, str]:
    """``(normalize(statement), fingerprint(...))`` in one call."""
    normalized = normalize(statement)
    return normalized, fingerprint(normalized)
