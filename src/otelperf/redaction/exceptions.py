"""Exceptions made safe to export: type, message and stack trace without the data they quote.

An exception's text is written for a developer reading a log on the server, so it quotes what
went wrong: SQLAlchemy's ``IntegrityError`` prints the statement and its bound parameters, the
driver's error adds PostgreSQL's ``DETAIL:  Key (email)=(...)`` line, Redis echoes the command's
arguments, HTTP clients print the URL with its userinfo and tokens. :func:`sanitize_exception`
reads the exception *object* and writes each kind the way it can be shared:

- SQL errors (SQLAlchemy ``StatementError``/``DBAPIError`` and the errors of psycopg, psycopg2,
  asyncpg, sqlite3, PyMySQL and other DB-API drivers, told apart by the module their class comes
  from, so no driver is imported): the driver's class, the first line of its message with
  literals masked and the sanitized statement; never the parameters or the ``DETAIL`` lines.
- Redis errors: the first line with quoted text masked; never the arguments.
- HTTP client errors (httpx, requests, urllib3, aiohttp): the message, with every URL redacted.
- Any other exception (the application's): its message as written (``exception_messages="keep"``,
  the default: the developer needs it), with literals masked (``"redact"``), or only its class
  name (``"drop"``).

Whatever the kind, URLs and credential ``key=value`` pairs in the text are always redacted. The
``__cause__``/``__context__`` chain is walked the same way, and the stack trace is formatted like
:func:`traceback.format_exception`, frames as usual, with each exception's safe message.

    >>> try:
    ...     raise ValueError("login failed for https://bob:hunter2@example.com/ password=hunter2")
    ... except ValueError as exc:
    ...     safe = sanitize_exception(exc)
    >>> safe.message
    'login failed for https://REDACTED:REDACTED@example.com/ password=REDACTED'
"""

from __future__ import annotations

import traceback
from typing import Any, NamedTuple

from otelperf import _names
from otelperf.redaction.sql import sanitize
from otelperf.redaction.text import mask_literals, mask_message, redact_text, scrub_error_text

__all__ = [
    "EXCEPTION_MESSAGE_MODES",
    "SafeException",
    "configure_exception_messages",
    "exception_attributes",
    "exception_messages_mode",
    "family_of_type_name",
    "safe_message",
    "sanitize_exception",
    "status_description",
]

EXCEPTION_MESSAGE_MODES = ("keep", "redact", "drop")

# Top-level packages whose exceptions are database errors (their text quotes rows and statements).
_SQL_PACKAGES = frozenset({
    "sqlalchemy", "psycopg", "psycopg2", "psycopg2cffi", "asyncpg", "sqlite3", "_sqlite3", "aiosqlite",
    "pymysql", "MySQLdb", "mysql", "aiomysql", "asyncmy", "pg8000", "oracledb", "cx_Oracle", "pyodbc",
    "duckdb", "sqlean",
})  # fmt: skip
_REDIS_PACKAGES = frozenset({"redis", "aioredis", "valkey", "rediscluster"})
_HTTP_PACKAGES = frozenset({"httpx", "httpcore", "requests", "urllib3", "aiohttp"})
_MAX_CHAIN = 16  # exceptions followed along __cause__/__context__ and in a group
_MAX_MESSAGE = 4096
# The lines traceback.format_exception puts between chained exceptions.
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"

_mode = "keep"


class SafeException(NamedTuple):
    """What may be exported about an exception: the semantic-convention ``exception.*`` values."""

    type: str
    message: str
    stacktrace: str


def configure_exception_messages(mode: str) -> None:
    """Set how application exception messages are exported: ``keep``, ``redact`` or ``drop``."""
    global _mode
    if mode not in EXCEPTION_MESSAGE_MODES:
        raise ValueError(f"exception_messages must be one of {EXCEPTION_MESSAGE_MODES}, not {mode!r}")
    _mode = mode


def exception_messages_mode() -> str:
    return _mode


def type_name(exc: BaseException) -> str:
    """``module.QualName`` of the exception's class (just the name for builtins), as the SDK writes it."""
    cls = type(exc)
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


def family_of_type_name(name: str) -> str:
    """``"sql"``, ``"redis"``, ``"http"`` or ``"app"`` for a dotted class or module name."""
    root = name.partition(".")[0]
    if root in _SQL_PACKAGES or name.startswith("django.db"):
        return "sql"
    if root in _REDIS_PACKAGES:
        return "redis"
    if root in _HTTP_PACKAGES:
        return "http"
    return "app"


def _family(exc: BaseException) -> str:
    # The class or any base: an application's subclass of a driver error quotes the same things.
    for cls in type(exc).__mro__:
        family = family_of_type_name(cls.__module__ or "")
        if family != "app":
            return family
    return "app"


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: message unavailable>"


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def _sql_message(exc: BaseException) -> str:
    statement = getattr(exc, "statement", None)
    if getattr(exc, "orig", None) is not None or isinstance(statement, str):
        # SQLAlchemy: args[0] is "(driver.Class) <driver message>", without [SQL]/[parameters].
        head = exc.args[0] if exc.args and isinstance(exc.args[0], str) else _text(exc)
    else:
        head = _text(exc)
    message = mask_literals(_first_line(head))
    if isinstance(statement, str) and statement:
        message += f"\n[SQL: {sanitize(statement)}]"
    return message


def _redis_message(exc: BaseException) -> str:
    line = _first_line(_text(exc))
    cut = line.find(" with args beginning with")
    if cut >= 0:
        line = line[:cut].rstrip(",")
    return mask_literals(line, quoted_only=True)  # "connecting to 127.0.0.1:6380" keeps its port


def safe_message(exc: BaseException) -> str:
    """The exception's message as it may be exported (see the module docstring)."""
    family = _family(exc)
    if family == "sql":
        message = _sql_message(exc)
    elif family == "redis":
        message = _redis_message(exc)
    elif family == "http":
        message = scrub_error_text(_text(exc))
    elif _mode == "drop":
        return type_name(exc)
    elif _mode == "redact":
        message = mask_message(scrub_error_text(_text(exc)))
    else:
        # The text pass too: an application error that quotes a database error ("import failed:
        # {exc}") carries its [parameters: ...] and DETAIL lines along.
        message = scrub_error_text(_text(exc))
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list) and notes and family == "app" and _mode == "keep":
        message += "".join("\n" + redact_text(str(note)) for note in notes[:8])
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + " ...[truncated]"
    return message


def _format_one(exc: BaseException, message: str) -> list[str]:
    lines: list[str] = []
    if exc.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(exc.__traceback__))
    name = type_name(exc)
    lines.append(f"{name}: {message}\n" if message and message != name else f"{name}\n")
    group: Any = getattr(exc, "exceptions", None)
    if isinstance(group, tuple):  # an exception group: its members, one line each
        members = [inner for inner in group[:_MAX_CHAIN] if isinstance(inner, BaseException)]
        for index, inner in enumerate(members, 1):
            lines.append(f"  +-- {index}: {type_name(inner)}: {safe_message(inner)}\n")
    return lines


def _chain(exc: BaseException) -> list[tuple[BaseException, str]]:
    """The exceptions to print, oldest first, each with the line that leads to the next one."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen and len(chain) < _MAX_CHAIN:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    return chain[::-1]


def format_stacktrace(exc: BaseException) -> str:
    """Like ``"".join(traceback.format_exception(exc))`` with each message made safe."""
    lines: list[str] = []
    chain = _chain(exc)
    for index, (current, link) in enumerate(chain):
        lines.extend(_format_one(current, safe_message(current)))
        if index + 1 < len(chain):
            lines.append(link)  # how the newer exception relates to this one
    return "".join(lines)


def sanitize_exception(exc: BaseException) -> SafeException:
    """Type, message and stack trace of ``exc`` that may leave the process. Never raises."""
    try:
        return SafeException(type_name(exc), safe_message(exc), format_stacktrace(exc))
    except Exception:  # a broken __str__ or traceback: export the class, nothing of its text
        name = type(exc).__qualname__
        return SafeException(name, name, "")


def exception_attributes(exc: BaseException, *, escaped: bool) -> dict[str, Any]:
    """The attributes of the ``exception`` span event, as ``Span.record_exception`` writes them."""
    safe = sanitize_exception(exc)
    return {
        _names.EXCEPTION_TYPE: safe.type,
        _names.EXCEPTION_MESSAGE: safe.message,
        _names.EXCEPTION_STACKTRACE: safe.stacktrace,
        _names.EXCEPTION_ESCAPED: str(escaped),
    }


def status_description(exc: BaseException) -> str:
    """An ERROR status description: ``"ClassName: safe message"`` (first line); the class name
    alone for an application exception under ``exception_messages="drop"``."""
    try:
        if _mode == "drop" and _family(exc) == "app":
            return type(exc).__name__
        return f"{type(exc).__name__}: {_first_line(safe_message(exc))}"
    except Exception:
        return type(exc).__name__
