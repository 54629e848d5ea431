"""The SQL sanitizer: no literal survives, the query's shape does."""

from __future__ import annotations

import pytest

from otelperf.redaction import sql as _sql
from otelperf.redaction.sql import (
    MAX_QUERY_TEXT_LENGTH,
    TRUNCATION_MARKER,
    operation_and_collection,
    sanitize,
)

CANARY = "s3cr3t-canary"


def _assert_hidden(sql: str, *, mysql: bool = False) -> str:
    out = sanitize(sql, mysql=mysql)
    assert "s3cr3t" not in out, out
    assert "canary" not in out, out
    return out


# Every kind of literal, each carrying the canary; the expected text is what is left.
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (f"SELECT * FROM t WHERE a = '{CANARY}'", "SELECT * FROM t WHERE a = ?"),
        (f"SELECT * FROM t WHERE a = 'it''s {CANARY}'", "SELECT * FROM t WHERE a = ?"),
        (f"SELECT * FROM t WHERE a = '{CANARY}''' AND b = 1", "SELECT * FROM t WHERE a = ? AND b = ?"),
        (f"SELECT E'{CANARY}'", "SELECT ?"),
        (f"SELECT e'it\\'s {CANARY}', 2", "SELECT ?, ?"),  # backslash-escaped quote in an E-string
        (f"SELECT E'\\\\', '{CANARY}'", "SELECT ?, ?"),  # an E-string ending in an escaped backslash
        (f"SELECT $${CANARY}$$", "SELECT ?"),
        (f"SELECT $fn$ a $ b '{CANARY}' $$ $fn$, 1", "SELECT ?, ?"),
        (f"SELECT $a$ $b$ {CANARY} $b$ $a$", "SELECT ?"),
        (f"SELECT N'{CANARY}', n'{CANARY}'", "SELECT ?, ?"),
        (f"SELECT U&'{CANARY}'", "SELECT ?"),
        ("SELECT X'5365637265740a', B'0101'", "SELECT ?, ?"),
        # A backslash before a quote: read both ways, so the secret is hidden whichever is right.
        (f"SELECT 'C:\\', '{CANARY}'", "SELECT ?"),
        (f"SELECT 'it\\'s {CANARY}' FROM t", "SELECT ?"),
        ("SELECT 'C:\\dir', 1 FROM t", "SELECT ?, ? FROM t"),  # no quote after the backslash: not ambiguous
        (f"SELECT 1 -- {CANARY}\nFROM t", "SELECT ? FROM t"),
        (f"SELECT /* {CANARY} */ 1", "SELECT ?"),
        (f"SELECT /* a '{CANARY} */ 'b'", "SELECT ?"),  # a quote inside a comment opens nothing
        (f"SELECT '-- {CANARY}' FROM t", "SELECT ? FROM t"),  # a comment marker inside a string
        (f"SELECT '/* {CANARY}' FROM t", "SELECT ? FROM t"),
        (f"SELECT '{CANARY}", "SELECT ?"),  # unterminated: hidden up to the end
        (f"SELECT $x$ {CANARY}", "SELECT ?"),
        (f"SELECT 1 /* {CANARY}", "SELECT ?"),
    ],
)
def test_every_string_and_comment_kind_is_hidden(sql: str, expected: str) -> None:
    assert _assert_hidden(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT 42, -7, 3.14, .5, 6., 1e10, 2.5E-3, 1e+4, 0xDEADBEEF, 0X1f",
            "SELECT ?, -?, ?, ?, ?, ?, ?, ?, ?, ?",
        ),
        ("SELECT * FROM t LIMIT 10 OFFSET 20", "SELECT * FROM t LIMIT ? OFFSET ?"),
        ("WHERE a IN (1,2,3) AND b BETWEEN 4 AND 5", "WHERE a IN (?,?,?) AND b BETWEEN ? AND ?"),
        ("SELECT a+1, b*2.0, c/3", "SELECT a+?, b*?, c/?"),
        (
            "UPDATE t SET flag = TRUE, other = false, third = True WHERE x IS NULL",
            ("UPDATE t SET flag = ?, other = ?, third = ? WHERE x IS NULL"),
        ),
        ("SELECT x::numeric(10, 2)", "SELECT x::numeric(?, ?)"),
    ],
)
def test_numbers_and_booleans_become_placeholders_and_null_stays(sql: str, expected: str) -> None:
    assert sanitize(sql) == expected


def test_canary_number_disappears() -> None:
    out = sanitize("SELECT * FROM cards WHERE pan = 4111111111111111 AND cvv = 737 AND amt = 19.99")
    assert out == "SELECT * FROM cards WHERE pan = ? AND cvv = ? AND amt = ?"


@pytest.mark.parametrize(
    "placeholder",
    ["$1", "$12", ":name", ":user_id2", ":1", "%s", "%(name)s", "%(param_1)s", "?", "?3", "@p1"],
)
def test_bind_placeholders_survive(placeholder: str) -> None:
    sql = f"SELECT * FROM t WHERE a = {placeholder} AND b = 'x'"
    assert sanitize(sql) == f"SELECT * FROM t WHERE a = {placeholder} AND b = ?"


def test_identifiers_with_digits_survive() -> None:
    sql = 'SELECT t1.col_2, t1.a1b2, x$1, "Col 3", "true", `tab 4`, trueish, false_flag FROM s9.t1 AS t1'
    assert sanitize(sql) == sql


def test_double_quoted_identifier_with_escaped_quote_stays() -> None:
    sql = 'SELECT "we""ird 1" FROM "Order" WHERE "Order".id = 5'
    assert sanitize(sql) == 'SELECT "we""ird 1" FROM "Order" WHERE "Order".id = ?'


def test_whitespace_is_collapsed_and_stripped() -> None:
    assert sanitize("  SELECT\n\ta ,\r\n  b\n FROM   t  ") == "SELECT a , b FROM t"


def test_comment_between_tokens_keeps_them_apart() -> None:
    assert sanitize("SELECT a/*x*/FROM t") == "SELECT a FROM t"


def test_sqlalchemy_style_statement_is_unchanged() -> None:
    sql = (
        "SELECT users.id, users.name \nFROM users \nWHERE users.id = ? AND users.status IN "
        "(__[POSTCOMPILE_status_1])"
    )
    assert sanitize(sql) == " ".join(sql.split())


class TestMySQL:
    def test_double_quoted_text_is_a_string(self) -> None:
        assert _assert_hidden(f'SELECT "{CANARY}", `col 1`', mysql=True) == "SELECT ?, `col 1`"

    def test_hash_comment(self) -> None:
        assert _assert_hidden(f"SELECT 1 # {CANARY}\nFROM t", mysql=True) == "SELECT ? FROM t"

    @pytest.mark.parametrize("mysql", [True, False])
    def test_backslash_escaped_quote_hides_the_string_in_both_modes(self, mysql: bool) -> None:
        out = _assert_hidden(f"SELECT * FROM t WHERE a = 'it\\'s {CANARY}' AND b = 2", mysql=mysql)
        # Read without backslash escapes, the string would end early and a new one would run to the
        # end: what follows the ambiguous string is hidden too. Less shape, no leak.
        assert out == "SELECT * FROM t WHERE a = ?"

    @pytest.mark.parametrize("mysql", [True, False])
    def test_trailing_backslash_string_hides_the_next_literal_in_both_modes(self, mysql: bool) -> None:
        # With NO_BACKSLASH_ESCAPES (or in standard SQL) 'C:\' is a complete string.
        assert _assert_hidden(f"SELECT 'C:\\', '{CANARY}'", mysql=mysql) == "SELECT ?"

    def test_double_quoted_string_with_backslash_quote(self) -> None:
        assert _assert_hidden(f'SELECT "a\\" {CANARY}"', mysql=True) == "SELECT ?"


def test_long_statement_is_truncated_with_marker_and_not_cached() -> None:
    sql = "SELECT " + ", ".join(f"'{CANARY}' AS c_{i}" for i in range(2000))
    before = _sql._sanitize_cached.cache_info().currsize
    out = sanitize(sql)
    assert len(out) <= MAX_QUERY_TEXT_LENGTH
    assert out.endswith(TRUNCATION_MARKER)
    assert out.startswith("SELECT ? AS c_0, ? AS c_1, ")
    assert CANARY not in out
    assert _sql._sanitize_cached.cache_info().currsize == before


def test_long_statement_cut_inside_a_literal_still_hides_it() -> None:
    # The cut falls inside the huge string: what is left of it is unterminated, hence hidden.
    sql = "SELECT '" + CANARY * 5000 + "'"
    out = sanitize(sql)
    assert CANARY not in out
    assert out == "SELECT ?" + TRUNCATION_MARKER


def test_results_are_cached_and_the_cache_is_bounded() -> None:
    sql = "SELECT * FROM cache_probe WHERE a = 1"
    sanitize(sql)
    hits = _sql._sanitize_cached.cache_info().hits
    assert sanitize(sql) == "SELECT * FROM cache_probe WHERE a = ?"
    assert _sql._sanitize_cached.cache_info().hits == hits + 1
    assert _sql._sanitize_cached.cache_info().maxsize == 2048


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT id FROM public.users WHERE id = $1", ("SELECT", "public.users")),
        ("select * from users u join orders o on o.uid = u.id", ("SELECT", "users")),
        ('SELECT "Order".id FROM "Order"', ("SELECT", '"Order"')),
        ("SELECT (SELECT max(x) FROM inner_t) FROM outer_t", ("SELECT", "outer_t")),
        ("SELECT extract(year FROM d) FROM events", ("SELECT", "events")),
        ("SELECT count(*) FROM (SELECT 1) AS anon_1", ("SELECT", None)),
        ("SELECT * FROM generate_series(1, 3)", ("SELECT", None)),
        ("SELECT 1", ("SELECT", None)),
        ("(SELECT a FROM t1) UNION (SELECT a FROM t2)", ("SELECT", "t1")),
        ("INSERT INTO users (name) VALUES (?)", ("INSERT", "users")),
        ("INSERT INTO s.users(name) VALUES (?)", ("INSERT", "s.users")),
        ("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("INSERT", "kv")),
        ("insert ignore into kv values (1)", ("INSERT", "kv")),
        ("UPDATE users SET name = ? WHERE id = ?", ("UPDATE", "users")),
        ("UPDATE ONLY users SET a = 1", ("UPDATE", "users")),
        ("DELETE FROM sessions WHERE expires < now()", ("DELETE", "sessions")),
        ("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", ("SELECT", "recent")),
        ("WITH x AS (SELECT id FROM a) UPDATE b SET c = 1 FROM x", ("UPDATE", "b")),
        ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) DELETE FROM t", ("DELETE", "t")),
        ("CREATE TABLE IF NOT EXISTS items (id int)", ("CREATE", "items")),
        ("CREATE TEMPORARY TABLE tmp_1 (id int)", ("CREATE", "tmp_1")),
        ("CREATE INDEX ix_a ON t (a)", ("CREATE", None)),
        ("DROP TABLE IF EXISTS items", ("DROP", "items")),
        ("ALTER TABLE items ADD COLUMN b int", ("ALTER", "items")),
        ("TRUNCATE TABLE items", ("TRUNCATE", "items")),
        ("BEGIN", ("BEGIN", None)),
        ("commit", ("COMMIT", None)),
        ("ROLLBACK TO SAVEPOINT sa_savepoint_1", ("ROLLBACK", None)),
        ("SAVEPOINT sa_savepoint_1", ("SAVEPOINT", None)),
        ("RELEASE SAVEPOINT sa_savepoint_1", ("RELEASE", None)),
        ('PRAGMA main.table_info("t")', ("PRAGMA", None)),
        ("  /* leading comment */ -- and another\n SELECT a FROM t", ("SELECT", "t")),
        ("SELECT 'FROM fake' FROM real_t", ("SELECT", "real_t")),
        ("", (None, None)),
        ("   ", (None, None)),
        ("hello world", (None, None)),  # not SQL: no free-form operation names
    ],
)
def test_operation_and_collection(sql: str, expected: tuple[str | None, str | None]) -> None:
    assert operation_and_collection(sql) == expected


def test_operation_and_collection_mysql_lexing() -> None:
    sql = "SELECT a # FROM fake\n FROM real_t"
    assert operation_and_collection(sql, mysql=True) == ("SELECT", "real_t")
    assert operation_and_collection(sql) == ("SELECT", "fake")  # '#' is an operator in PostgreSQL


def test_operation_and_collection_is_cached() -> None:
    sql = "SELECT * FROM op_cache_probe"
    operation_and_collection(sql)
    hits = _sql._operation_and_collection.cache_info().hits
    operation_and_collection(sql)
    assert _sql._operation_and_collection.cache_info().hits == hits + 1
