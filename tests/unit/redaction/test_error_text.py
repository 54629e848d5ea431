"""The text passes: URLs and credential pairs always, database echoes, literals on request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otelperf import redaction
from otelperf.redaction.text import mask_literals, redact_text, scrub_error_text, scrub_stacktrace

CANARY = "cn4ry-text"


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    redaction.configure()
    yield
    redaction.configure()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"GET https://u:{CANARY}@api.example.com/v1?api-key={CANARY}&page=2 failed",
            "GET https://REDACTED:REDACTED@api.example.com/v1?api-key=REDACTED&page=2 failed",
        ),
        (
            f"Max retries exceeded with url: /y?token={CANARY}&ok=1 (Caused by X)",
            "Max retries exceeded with url: /y?token=REDACTED&ok=1 (Caused by X)",
        ),
        (f"login failed: password={CANARY}", "login failed: password=REDACTED"),
        (f"{{'client_secret': '{CANARY}', 'page': 2}}", "{'client_secret': 'REDACTED', 'page': 2}"),
        (f'{{"refresh_token": "{CANARY}"}}', '{"refresh_token": "REDACTED"}'),
        (f"Authorization: Bearer {CANARY}", "Authorization: REDACTED"),
        (f"see https://h/x?sig={CANARY}.", "see https://h/x?sig=REDACTED."),
        ("status: 500, page=3", "status: 500, page=3"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_scrub_error_text_removes_what_sqlalchemy_and_postgresql_echo() -> None:
    text = (
        '(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "u_email_key"\n'
        f"DETAIL:  Key (email)=({CANARY}@x.io) already exists.\n"
        f"[SQL: INSERT INTO u (email, pw)\nVALUES ('{CANARY}@x.io', %(pw)s)]\n"
        f"[parameters: {{'pw': '{CANARY}', 'other': ']'}}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    )
    out = scrub_error_text(text)
    assert CANARY not in out
    assert out == (
        '(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "u_email_key"\n'
        "[SQL: INSERT INTO u (email, pw) VALUES (?, %(pw)s)]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    )


def test_scrub_error_text_handles_cut_blocks_and_echoed_lines() -> None:
    assert CANARY not in scrub_error_text(f"[SQL: SELECT '{CANARY}' FROM t")  # no closing bracket
    assert CANARY not in scrub_error_text(f"x\n[parameters: ('{CANARY}',)")
    pg = f"syntax error at or near \"FRM\"\nLINE 1: SELECT '{CANARY}' FRM t\n               ^"
    assert scrub_error_text(pg) == 'syntax error at or near "FRM"\nLINE 1: SELECT ? FRM t\n               ^'
    redis = f"unknown command 'GETX', with args beginning with: '{CANARY}' "
    assert scrub_error_text(redis) == "unknown command 'GETX'"
    assert CANARY not in scrub_error_text(f"new row violates check\nFailing row contains ({CANARY}, 1).")


def test_mask_literals_keeps_quoted_names_and_redacted_urls() -> None:
    text = (
        f"user '{CANARY}' (id 1234567, code 42) from {CANARY}@mail.example.com not in relation \"users\" "
        f"at 'https://u:{CANARY}@h/x'"
    )
    assert mask_literals(text) == (
        "user '?' (id ?, code 42) from ? not in relation \"users\" at 'https://REDACTED:REDACTED@h/x'"
    )


TRACEBACK = f"""Traceback (most recent call last):
  File "app.py", line 3, in handler
    raise LookupError(f"no user {{name!r}}")
LookupError: no user '{CANARY}'
"""


def test_scrub_stacktrace_modes() -> None:
    assert scrub_stacktrace(TRACEBACK, "keep") == TRACEBACK
    redacted = scrub_stacktrace(TRACEBACK, "redact")
    assert "LookupError: no user '?'" in redacted
    assert 'raise LookupError(f"no user {name!r}")' in redacted  # frames as usual
    dropped = scrub_stacktrace(TRACEBACK, "drop")
    assert CANARY not in dropped
    assert dropped.splitlines()[-1] == "LookupError"
    assert '  File "app.py", line 3, in handler' in dropped


def test_long_text_is_cut_and_marked_before_any_pass() -> None:
    text = "x" * 40_000 + f" password={CANARY}"
    out = scrub_error_text(text)
    assert out.endswith(" ...[truncated]")
    assert CANARY not in out
    cut_literal = mask_literals("z" * 32_760 + f" '{CANARY}' and more")  # the cut falls inside the quotes
    assert "cn4ry" not in cut_literal
    assert cut_literal.endswith(" ...[truncated]")
    assert "'" not in cut_literal  # the half literal went whole


@pytest.mark.parametrize("text", ["a." * 50_000, "x-y.z+" * 20_000, "a@" * 50_000, ("a" * 60 + "@") * 2_000])
def test_inputs_that_would_make_a_naive_pattern_backtrack_are_handled(text: str) -> None:
    # Quadratic patterns took tens of seconds on these; the passes are linear (and cut at 32 KB).
    assert len(mask_literals(text)) <= 32_768 + len(" ...[truncated]")
    assert len(scrub_stacktrace(text, "redact")) <= 32_768 + len(" ...[truncated]")
