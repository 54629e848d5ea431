"""Statement normalization and fingerprints: what counts as "the same query"."""

from __future__ import annotations

import pytest

from otelperf.detectors.fingerprint import fingerprint, normalize, statement_fingerprint
from otelperf.redaction.sql import sanitize


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        # every placeholder style
        ("SELECT * FROM t WHERE a = $1 AND b = $2", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT * FROM t WHERE a = :a AND b = :b_1", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT * FROM t WHERE a = %s AND b = %(b_1)s", "SELECT * FROM t WHERE a = ? AND b = ?"),
        (
            "SELECT * FROM t WHERE a = ? AND b = ?1 AND c = @p1",
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?",
        ),
        # literals, numbers, booleans, negative numbers
        (
            "SELECT * FROM t WHERE name = 'bob' AND n > 42.5 AND ok = TRUE AND x = -3",
            "SELECT * FROM t WHERE name = ? AND n > ? AND ok = ? AND x = ?",
        ),
        # NULL is not a value to fold: IS NULL and = ? are different queries
        ("SELECT * FROM t WHERE deleted_at IS NULL", "SELECT * FROM t WHERE deleted_at IS NULL"),
        # IN lists of any length, tuples too
        ("SELECT * FROM t WHERE id IN (1, 2, 3, 4)", "SELECT * FROM t WHERE id IN (?)"),
        ("SELECT * FROM t WHERE id IN ($1)", "SELECT * FROM t WHERE id IN (?)"),
        ("SELECT * FROM t WHERE id NOT IN (%s,%s)", "SELECT * FROM t WHERE id NOT IN (?)"),
        ("SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))", "SELECT * FROM t WHERE (a, b) IN ((?, ?))"),
        # VALUES rows
        ("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')", "INSERT INTO t(a, b) VALUES (?, ?)"),
        ("INSERT INTO t (a) VALUES ($1)", "INSERT INTO t(a) VALUES (?)"),
        # savepoint names
        ("SAVEPOINT sa_savepoint_12", "SAVEPOINT ?"),
        ("RELEASE SAVEPOINT sa_savepoint_12", "RELEASE SAVEPOINT ?"),
        ("ROLLBACK TO SAVEPOINT sa_savepoint_3", "ROLLBACK TO SAVEPOINT ?"),
        ('SAVEPOINT "my point"', "SAVEPOINT ?"),
        # whitespace, case, comments, the trailing semicolon
        ("select  *\n\tfrom   T\nwhere ID=1 -- why\n;", "SELECT * FROM t WHERE id = ?"),
        ("SELECT count( * ) FROM t", "SELECT COUNT(*) FROM t"),
        # quoted identifiers are kept as written
        (
            'SELECT "Name" FROM "Order" WHERE "Order"."Id" = 1',
            'SELECT "Name" FROM "Order" WHERE "Order"."Id" = ?',
        ),
        # PostgreSQL casts and array subscripts are not placeholders
        ("SELECT a::text, arr[1] FROM t", "SELECT a::text, arr[?] FROM t"),
    ],
)
def test_normalize(statement: str, expected: str) -> None:
    assert normalize(statement) == expected


def test_sanitized_and_raw_text_normalize_the_same() -> None:
    raw = "SELECT * FROM users WHERE email = 'a@b.c' AND id IN (1, 2, 3)"
    assert normalize(raw) == normalize(sanitize(raw)) == "SELECT * FROM users WHERE email = ? AND id IN (?)"


def test_quoted_identifier_differs_from_unquoted() -> None:
    assert normalize('SELECT * FROM "Order"') != normalize("SELECT * FROM order")
    assert normalize("SELECT * FROM Orders") == normalize("select * from ORDERS")


def test_fingerprint_is_short_stable_hex() -> None:
    fp = fingerprint("SELECT * FROM t WHERE id = ?")
    assert len(fp) == 16
    int(fp, 16)
    # Pinned: a fingerprint is a metric attribute, it must not change between releases by accident.
    assert fp == fingerprint("SELECT * FROM t WHERE id = ?") == "13c293b1b5f28b3b"
    assert fingerprint("SELECT * FROM t WHERE id = ? LIMIT ?") != fp


def test_same_query_different_values_one_fingerprint() -> None:
    a = statement_fingerprint("SELECT * FROM t WHERE id IN (1, 2) AND flag = true")
    b = statement_fingerprint("select * from t where id in ($1, $2, $3) and flag = $4")
    assert a == b


def test_long_statements_are_normalized_without_the_cache() -> None:
    long = "SELECT * FROM t WHERE id IN (" + ", ".join(str(i) for i in range(3000)) + ")"
    assert len(long) > 4096
    # sanitize() cuts the text; the cut IN list still folds, so every length is one statement.
    assert normalize(long) == "SELECT * FROM t WHERE id IN (?) ...[truncated]"
    assert normalize(long.replace("(0, ", "(")) == normalize(long)
