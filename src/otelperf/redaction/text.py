"""Free text that may quote secrets: exception messages, stack traces, status descriptions.

Three passes, from always-on to opt-in:

- :func:`redact_text` (always): every URL in the text goes through
  :func:`~otelperf.redaction.url.redact_url` (userinfo, credential query values), and so does a
  bare ``/path?query``; a ``key=value`` or ``key: value`` pair whose key is a credential name
  (the query-parameter rules: ``password``, ``api-key``, ``*_token``...) keeps its key only.
- :func:`scrub_error_text` (text of unknown origin, e.g. an exception event some other code
  recorded): :func:`redact_text` plus what database errors are known to carry: SQLAlchemy's
  ``[parameters: ...]`` block is removed, its ``[SQL: ...]`` block sanitized, PostgreSQL's
  ``DETAIL:`` / ``CONTEXT:`` lines dropped (they quote row values) and its ``LINE n:`` echo of
  the statement sanitized, Redis's ``with args beginning with: ...`` cut.
- :func:`mask_literals` (``exception_messages="redact"``): quoted strings, numbers of 4 digits
  or more and e-mail addresses become ``?``. Double-quoted names after ``relation``,
  ``constraint``, ``column``... (how PostgreSQL quotes identifiers) stay.

>>> redact_text("GET https://u:pw@api.example.com/v1?api-key=k1&page=2 failed: password=hunter2")
'GET https://REDACTED:REDACTED@api.example.com/v1?api-key=REDACTED&page=2 failed: password=REDACTED'
"""

from __future__ import annotations

import re
from functools import lru_cache

from otelperf.redaction import url as _url
from otelperf.redaction.sql import sanitize

__all__ = ["mask_literals", "mask_message", "redact_text", "scrub_error_text", "scrub_stacktrace"]

REDACTED = _url.REDACTED

# A URL with a scheme, or a path with a query (urllib3 says "Max retries exceeded with url: /x?t=1").
_URL_RE = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'"<>`]+|(?<![\w/.:])/[^\s'"<>`?]*\?[^\s'"<>`]+""")
# key=value / key: value / "key": "value" / 'key': 'value'. Only the key and separator are
# matched, so that a pair inside another pair's value ("failed: password=x") is found too.
_KEY_RE = re.compile(r"""(?P<lq>['"]?)(?P<key>[A-Za-z_][\w.\-]*)(?P=lq)\s*[=:]\s*""")
# The value after a credential key: quoted, or up to a delimiter; "Bearer xyz" takes its scheme along.
_VALUE_RE = re.compile(r"""(?:(?:Bearer|Basic|Token|Digest)\s+)?(?:'[^']*'|"[^"]*"|[^\s&,;)\]}'"]+)""")
_QUOTED_NAME_BEFORE = (
    "relation",
    "constraint",
    "table",
    "type",
    "index",
    "schema",
    "database",
    "role",
    "function",
    "operator",
    "sequence",
    "view",
    "trigger",
    "extension",
)
# 'column "x" does not exist' and SQLite's 'no such column: x' are what an app gets when it wrote
# a value in double quotes: the "name" is then the value. Masked, as a value would be.
_LITERAL_RE = re.compile(
    # Bounded parts and a start only where a run begins: linear on any input ("a.a.a...").
    r"""(?P<email>(?<![\w.+\-])[\w.+\-]{1,64}@[\w\-]{1,63}(?:\.[\w\-]{1,63}){1,8})"""
    r"""|(?P<single>'[^'\n]*')"""
    r"""|(?P<double>"[^"\n]*")"""
    r"""|(?P<nosuch>(?<=no such column: )[^\s,;)]+)"""
    r"""|(?P<number>(?<![\w.])\d{4,}(?:\.\d+)?(?![\w]))"""
)
# Where SQLAlchemy's "[SQL: ...]" block ends: before its parameters, its link, a blank line or the end.
_SQL_BLOCK_END_RE = re.compile(r"\](?=\s*\n\s*\[parameters:|\s*\n\s*\(Background|\s*\n\s*\n|\s*\Z)")
_PARAMETERS_RE = re.compile(
    r"\n?[ \t]*\[parameters: .*?(?:\]\s*(?=\n\s*\(Background|\n\s*\n|\Z)|\Z)", re.DOTALL
)
_DB_DETAIL_LINE_RE = re.compile(r"^[ \t]*(?:DETAIL|CONTEXT|Failing row contains)\b[^\n]*\n?", re.MULTILINE)
_PG_LINE_RE = re.compile(r"^([ \t]*LINE \d+: )([^\n]*)$", re.MULTILINE)
_REDIS_ARGS_RE = re.compile(r",? with args beginning with:[^\n]*")
# Non-indented lines of a Python traceback that are not the exception's own text.
_TRACEBACK_HEADERS = (
    "Traceback (most recent call last):",
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
_MAX_CACHED = 4096
# Longer text is cut (and marked) before any pass: bounded work on the exporting thread. Cutting
# first is safe: a block or literal cut in half is hidden up to the end.
MAX_TEXT_LENGTH = 32768
TRUNCATION_MARKER = " ...[truncated]"
_SANITIZED_LINES = ("[SQL: ", "(Background on this error")


def _redact_url_match(match: re.Match[str]) -> str:
    text = match.group()
    # A sentence may end right after the URL: keep trailing punctuation out of it.
    stripped = text.rstrip(".,;:)]}")
    return _url.redact_url(stripped) + text[len(stripped) :]


def _redact_pairs(text: str) -> str:
    out: list[str] = []
    position = 0
    for match in _KEY_RE.finditer(text):
        if match.start() < position or not _sensitive_key(match.group("key")):
            continue
        value = _VALUE_RE.match(text, match.end())
        if value is None:
            continue
        found = value.group()
        quote = found[-1] if found[-1:] in ("'", '"') and found[:1] == found[-1:] else ""
        end = value.end()
        if not quote:
            end -= len(found) - len(found.rstrip(".:"))  # the sentence's full stop is not the secret
        out.append(text[position : match.end()])
        out.append(quote + REDACTED + quote)
        position = end
    if not out:
        return text
    out.append(text[position:])
    return "".join(out)


@lru_cache(maxsize=1024)
def _sensitive_key(name: str) -> bool:
    # The rules only: an allow-list is about query strings, and applied to prose it would hide
    # every "status: 500".
    return _url.query_policy().is_sensitive(name)


def reset_caches() -> None:
    """Forget cached decisions (the redaction policy changed)."""
    _sensitive_key.cache_clear()
    _redact_text_cached.cache_clear()


def _bounded(text: str) -> str:
    if len(text) <= MAX_TEXT_LENGTH or (
        len(text) <= MAX_TEXT_LENGTH + len(TRUNCATION_MARKER) and text.endswith(TRUNCATION_MARKER)
    ):
        return text  # short, or cut already by an earlier pass
    cut = text[:MAX_TEXT_LENGTH]
    for quote in "'\"":
        if cut.count(quote) % 2:  # a quoted literal cut in half: it goes, not its first half
            cut = cut[: cut.rfind(quote)]
    return cut + TRUNCATION_MARKER


def redact_text(text: str) -> str:
    """URLs and credential ``key=value`` pairs in ``text`` redacted (see the module docstring)."""
    if not text:
        return text
    text = _bounded(text)
    if len(text) <= _MAX_CACHED:
        return _redact_text_cached(text)
    return _redact_text(text)


@lru_cache(maxsize=256)
def _redact_text_cached(text: str) -> str:
    return _redact_text(text)


def _redact_text(text: str) -> str:
    if "://" in text or "?" in text:
        text = _URL_RE.sub(_redact_url_match, text)
    if "=" in text or ":" in text:
        text = _redact_pairs(text)
    return text


def _mask_literal(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group()
    if kind == "double":
        before = match.string[max(0, match.start() - 16) : match.start()].rstrip().lower()
        if before.endswith(_QUOTED_NAME_BEFORE):
            return text
        return '"?"'
    if kind == "single":
        inner = text[1:-1]
        if "://" in inner and _url.redact_url(inner) != inner:
            return "'" + _url.redact_url(inner) + "'"
        if "://" in inner:
            return text  # an already redacted URL, quoted: httpx's "for url '...'"
        return "'?'"
    return "?"


def _mask_quoted(match: re.Match[str]) -> str:
    return _mask_literal(match) if match.lastgroup in ("single", "double") else match.group()


def mask_literals(text: str, *, quoted_only: bool = False) -> str:
    """Quoted strings, numbers of 4+ digits and e-mail addresses in ``text`` become ``?`` (only the
    quoted strings with ``quoted_only``).

    >>> mask_literals("no user 'bob' (id 123456) in relation \\"users\\" for bob@example.com")
    'no user \\'?\\' (id ?) in relation "users" for ?'
    """
    if quoted_only:
        return _LITERAL_RE.sub(_mask_quoted, redact_text(text))
    return _LITERAL_RE.sub(_mask_literal, redact_text(text))


def _sanitize_sql_blocks(text: str) -> str:
    out: list[str] = []
    position = 0
    while True:
        start = text.find("[SQL: ", position)
        if start < 0:
            break
        body = start + len("[SQL: ")
        end = _SQL_BLOCK_END_RE.search(text, body)
        stop = len(text) if end is None else end.start()  # no end found: all the rest is SQL
        out.append(text[position:body])
        out.append(sanitize(text[body:stop]))
        position = stop
    out.append(text[position:])
    return "".join(out)


def _sanitize_pg_line(match: re.Match[str]) -> str:
    return match.group(1) + sanitize(match.group(2))


def scrub_error_text(text: str) -> str:
    """``text`` of an error whose origin is unknown, with what databases and URLs leak removed.

    >>> scrub_error_text("(psycopg.errors.UniqueViolation) duplicate key\\nDETAIL:  Key (email)=(a@b.c) "
    ...     "already exists.\\n[SQL: INSERT INTO u (email) VALUES ('a@b.c')]\\n[parameters: {'p': 'pw'}]")
    '(psycopg.errors.UniqueViolation) duplicate key\\n[SQL: INSERT INTO u (email) VALUES (?)]'
    """
    if not text:
        return text
    text = _bounded(text)
    if "[parameters:" in text:
        text = _PARAMETERS_RE.sub("", text)
    if "[SQL: " in text:
        text = _sanitize_sql_blocks(text)
    if "DETAIL" in text or "CONTEXT" in text or "Failing row" in text:
        text = _DB_DETAIL_LINE_RE.sub("", text)
    if "LINE " in text:
        text = _PG_LINE_RE.sub(_sanitize_pg_line, text)
    if "with args beginning with" in text:
        text = _REDIS_ARGS_RE.sub("", text)
    return redact_text(text)


def _is_message_line(line: str) -> bool:
    return (
        bool(line)
        and not line[0].isspace()
        and line not in _TRACEBACK_HEADERS
        and not line.startswith(_SANITIZED_LINES)  # already safe, and its quoted names stay readable
    )


def mask_message(text: str) -> str:
    """:func:`mask_literals` on every line of an error message but its ``[SQL: ...]`` block."""
    return "\n".join(
        mask_literals(line) if not line.startswith(_SANITIZED_LINES) else line for line in text.split("\n")
    )


def scrub_stacktrace(text: str, mode: str) -> str:
    """A formatted Python traceback through :func:`scrub_error_text`, and its exception lines
    (the non-indented ones) masked (``mode="redact"``) or cut to the type (``mode="drop"``)."""
    text = scrub_error_text(text)
    if mode == "keep" or not text:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        if not _is_message_line(line):
            out.append(line)
        elif mode == "redact":
            out.append(mask_literals(line))
        else:
            head, sep, _rest = line.partition(": ")
            if sep and " " not in head:
                out.append(head)
            elif " " not in line.strip():
                out.append(line)  # a bare type name
    return "\n".join(out)
