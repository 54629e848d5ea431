"""Exceptions read as objects: each kind keeps what a developer needs and nothing it quotes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy import create_engine, text

from otelperf import redaction
from otelperf.config import resolve_settings
from otelperf.redaction.exceptions import (
    exception_attributes,
    safe_message,
    sanitize_exception,
    status_description,
)

CANARY = "cn4ry-exc"


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    redaction.configure()
    yield
    redaction.configure()


def _raised(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def _integrity_error() -> BaseException:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE u (email TEXT UNIQUE, pw TEXT)"))
        conn.execute(text("INSERT INTO u VALUES (:e, :p)"), {"e": "a@x.io", "p": CANARY})

        def insert_again() -> None:
            conn.execute(text(f"INSERT INTO u VALUES ('a@x.io', :p) -- {CANARY}"), {"p": CANARY})

        return _raised(insert_again)


def test_sqlalchemy_error_keeps_class_driver_line_and_sanitized_statement() -> None:
    exc = _integrity_error()
    assert isinstance(exc, sqlalchemy.exc.IntegrityError)
    assert CANARY in str(exc)  # the premise: SQLAlchemy's text quotes the parameters
    safe = sanitize_exception(exc)
    assert safe.type == "sqlalchemy.exc.IntegrityError"
    assert safe.message == (
        "(sqlite3.IntegrityError) UNIQUE constraint failed: u.email\n[SQL: INSERT INTO u VALUES (?, ?)]"
    )
    assert CANARY not in safe.stacktrace
    # The chain is there, each with its own safe message, frames as usual.
    assert "sqlite3.IntegrityError: UNIQUE constraint failed: u.email\n" in safe.stacktrace
    assert "The above exception was the direct cause of the following exception:" in safe.stacktrace
    assert safe.stacktrace.rstrip().endswith("[SQL: INSERT INTO u VALUES (?, ?)]")
    assert 'in insert_again\n    conn.execute(text(f"INSERT' in safe.stacktrace
    assert status_description(exc) == (
        "IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed: u.email"
    )


def test_driver_errors_are_recognised_by_module_without_importing_the_driver() -> None:
    # psycopg2 is not installed here: a class from its module is enough to be read as SQL.
    cls = type("UniqueViolation", (Exception,), {"__module__": "psycopg2.errors"})
    exc = cls(
        'duplicate key value violates unique constraint "u_email_key"\n'
        f"DETAIL:  Key (email)=({CANARY}@x.io) already exists.\n"
    )
    assert safe_message(exc) == 'duplicate key value violates unique constraint "u_email_key"'
    value_error = type("InvalidTextRepresentation", (Exception,), {"__module__": "asyncpg.exceptions"})
    assert safe_message(value_error(f'invalid input syntax for type integer: "{CANARY}"')) == (
        'invalid input syntax for type integer: "?"'
    )
    syntax = sqlite3.OperationalError(f"near '{CANARY}': syntax error")
    assert safe_message(syntax) == "near '?': syntax error"


def test_subclass_of_a_driver_error_is_still_a_sql_error() -> None:
    class MyError(sqlite3.IntegrityError):
        pass

    assert safe_message(MyError(f"CHECK failed for '{CANARY}'")) == "CHECK failed for '?'"


def test_redis_errors_never_show_their_arguments() -> None:
    cls = type("ResponseError", (Exception,), {"__module__": "redis.exceptions"})
    exc = cls(f"unknown command 'X{CANARY}', with args beginning with: '{CANARY}' ")
    assert safe_message(exc) == "unknown command '?'"


def test_http_errors_keep_the_redacted_url() -> None:
    cls = type("HTTPStatusError", (Exception,), {"__module__": "httpx"})
    exc = cls(
        f"Client error '404 Not Found' for url 'https://u:{CANARY}@api.example.com/x?token={CANARY}&q=1'"
    )
    assert safe_message(exc) == (
        "Client error '404 Not Found' for url 'https://REDACTED:REDACTED@api.example.com/x?token=REDACTED&q=1'"
    )


def test_application_messages_by_mode() -> None:
    exc = ValueError(f"order 123456 of '{CANARY}' failed, see https://u:{CANARY}@h/x api_key={CANARY}")
    kept = "order 123456 of 'cn4ry-exc' failed, see https://REDACTED:REDACTED@h/x api_key=REDACTED"
    assert safe_message(exc) == kept  # URLs and credential pairs are redacted in every mode
    redaction.configure(resolve_settings(environ={}, exception_messages="redact"))
    assert safe_message(exc) == "order ? of '?' failed, see https://REDACTED:REDACTED@h/x api_key=REDACTED"
    redaction.configure(resolve_settings(environ={}, exception_messages="drop"))
    assert safe_message(exc) == "ValueError"
    safe = sanitize_exception(exc)
    assert CANARY not in safe.stacktrace
    assert status_description(exc) == "ValueError"


def test_chain_through_context_and_notes() -> None:
    def fail() -> None:
        try:
            raise KeyError(f"password={CANARY}")
        except KeyError:
            raise RuntimeError("lookup failed")  # noqa: B904 - the implicit context is the point

    exc = _raised(fail)
    exc.add_note(f"token: {CANARY}")
    safe = sanitize_exception(exc)
    assert "During handling of the above exception, another exception occurred:" in safe.stacktrace
    assert "KeyError: 'password=REDACTED'" in safe.stacktrace
    assert safe.message == "lookup failed\ntoken: REDACTED"
    assert CANARY not in safe.stacktrace


def test_a_broken_str_never_raises() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError(CANARY)

    safe = sanitize_exception(Broken())
    assert CANARY not in "".join(safe)
    assert safe.type.endswith("Broken")


def test_event_attributes_match_the_sdk_names() -> None:
    attributes = exception_attributes(ValueError("x"), escaped=True)
    names = {"exception.type", "exception.message", "exception.stacktrace", "exception.escaped"}
    assert set(attributes) == names
    assert attributes["exception.escaped"] == "True"


def test_exception_group_members_are_sanitized() -> None:
    group = ExceptionGroup("many", [ValueError(f"secret={CANARY}"), sqlite3.Error(f"'{CANARY}'")])  # noqa: F821
    safe = sanitize_exception(group)
    assert CANARY not in safe.stacktrace
    assert "+-- 1: ValueError: secret=REDACTED" in safe.stacktrace


def test_an_application_error_quoting_a_database_error_loses_its_parameters() -> None:
    inner = _integrity_error()
    wrapped = RuntimeError(f"import failed: {inner}")
    message = safe_message(wrapped)
    assert CANARY not in message
    head = "import failed: (sqlite3.IntegrityError) UNIQUE constraint failed: u.email\n[SQL: "
    assert message.startswith(head)


def test_redis_connection_errors_keep_host_and_port() -> None:
    cls = type("ConnectionError", (Exception,), {"__module__": "redis.exceptions"})
    message = "Error 111 connecting to 127.0.0.1:6380. Connection refused."
    assert safe_message(cls(message)) == message
