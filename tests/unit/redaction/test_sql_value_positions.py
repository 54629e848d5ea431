"""The sanitizer gaps of issue 12: nested comments, double-quoted values, SET values."""

from __future__ import annotations

import pytest

from otelperf.detectors.fingerprint import statement_fingerprint
from otelperf.redaction.sql import operation_and_collection, sanitize

CANARY = "cn4ry-sql"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (f"SELECT 1 /* a /* b */ {CANARY} */ FROM t", "SELECT ? FROM t"),
        (f"SELECT 1 /* a /* b /* c */ {CANARY} */ {CANARY} */ FROM t", "SELECT ? FROM t"),
        (f"SELECT a /* x */ FROM t /* {CANARY} /* y */ */", "SELECT a FROM t"),
        (f"SELECT 1 /* /* {CANARY}", "SELECT ?"),  # unterminated: hidden to the end
        (f'SELECT * FROM t WHERE name = "{CANARY}"', "SELECT * FROM t WHERE name = ?"),
        (
            f'SELECT * FROM t WHERE a <> "{CANARY}" OR b LIKE "%{CANARY}%"',
            "SELECT * FROM t WHERE a <> ? OR b LIKE ?",
        ),
        (
            f'INSERT INTO "order" ("id", "name") VALUES ("{CANARY}", "{CANARY}"), (1, "{CANARY}")',
            'INSERT INTO "order" ("id", "name") VALUES (?, ?), (?, ?)',
        ),
        (f'SELECT "x" FROM t WHERE a IN ("{CANARY}", "{CANARY}")', 'SELECT "x" FROM t WHERE a IN (?, ?)'),
        (
            f'SELECT * FROM t WHERE a BETWEEN "{CANARY}" AND "{CANARY}"',
            "SELECT * FROM t WHERE a BETWEEN ? AND ?",
        ),
        (f'UPDATE "user" SET "name" = "{CANARY}" WHERE id = 1', 'UPDATE "user" SET "name" = ? WHERE id = ?'),
        (f'SELECT * FROM t WHERE a = lower("{CANARY}")', "SELECT * FROM t WHERE a = lower(?)"),
        (f'SELECT CASE WHEN a THEN "{CANARY}" ELSE "{CANARY}" END', "SELECT CASE WHEN a THEN ? ELSE ? END"),
        (f"SET x = {CANARY}", "SET x = ?"),
        (f"set app.api_key TO {CANARY}", "set app.api_key TO ?"),
        (f"SET search_path = {CANARY}, public", "SET search_path = ?, ?"),
        (f"SET a = {CANARY}, b = {CANARY}", "SET a = ?, b = ?"),
        (f"SET ROLE {CANARY}", "SET ROLE ?"),
        (f"SET SESSION AUTHORIZATION {CANARY}", "SET SESSION AUTHORIZATION ?"),
        (f"BEGIN; SET LOCAL x = {CANARY}", "BEGIN; SET LOCAL x = ?"),
    ],
)
def test_gaps_are_closed(sql: str, expected: str) -> None:
    out = sanitize(sql)
    assert CANARY not in out
    assert out == expected


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT "user".id, "user".name FROM "user" WHERE "user".id = ?',
        'SELECT count(*) AS "x" FROM "order" JOIN "user" ON "order".uid = "user".id',
        'INSERT INTO "order" ("id", "name") VALUES (?, ?)',
        'INSERT INTO t (a) VALUES (?) ON CONFLICT ("a") DO UPDATE SET "a" = excluded."a"',
        'SELECT * FROM t WHERE a IN (SELECT "name" FROM "user" WHERE "user".k = ?)',
        "UPDATE stock SET qty = qty - $1 WHERE sku = $2",
        'SELECT "Col 3" FROM t ORDER BY "Col 3"',
    ],
)
def test_quoted_identifiers_stay_readable(sql: str) -> None:
    assert sanitize(sql) == sql


def test_mysql_keeps_reading_double_quotes_as_strings() -> None:
    assert sanitize(f'SELECT "{CANARY}" /* a /* b */ {CANARY} */', mysql=True) == "SELECT ?"


def test_the_table_of_a_quoted_statement_is_still_found() -> None:
    assert operation_and_collection(f'SELECT * FROM "user" WHERE name = "{CANARY}"') == ("SELECT", '"user"')


def test_fingerprints_used_by_findings_carry_no_value() -> None:
    for sql in (
        f'SELECT * FROM "user" WHERE email = "{CANARY}"',
        f"SELECT * FROM t /* x /* y */ {CANARY} */ WHERE id = 1",
        f"SET x = {CANARY}",
    ):
        normalized, fingerprint = statement_fingerprint(sql)
        assert CANARY not in normalized
        assert len(fingerprint) == 16
    same_shape = statement_fingerprint('SELECT * FROM "user" WHERE email = "other"')
    assert statement_fingerprint(f'SELECT * FROM "user" WHERE email = "{CANARY}"') == same_shape


def test_the_part_after_the_last_double_quote_is_lexed_like_any_statement() -> None:
    rows = ", ".join(f"({i}, '{CANARY}{i}', $${CANARY}$$)" for i in range(300))
    sql = f'INSERT INTO "order" ("id", "name", "note") VALUES {rows} -- {CANARY}'
    out = sanitize(sql)
    assert CANARY not in out
    assert out.startswith('INSERT INTO "order" ("id", "name", "note") VALUES (?, ?, ?), (?, ?, ?)')
