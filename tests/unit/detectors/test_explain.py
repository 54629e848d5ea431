"""EXPLAIN of slow PostgreSQL SELECTs: eligibility, placeholders, plan parsing, the worker's limits.

The worker's database side runs against a real PostgreSQL in tests/integration/test_explain_postgres.py;
here a recording session stands in for the connection, to pin what is sent and how often.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url
from tests.unit.detectors.corpus_budget import S, build, server

from otelperf.config import Settings, resolve_settings
from otelperf.detectors import explain
from otelperf.detectors._explain_session import Target
from otelperf.detectors.explain import ExplainWorker, PlanSummary, explainable, positional, summarize_plan
from otelperf.detectors.slow_query import SlowQueryDetector, plan_hint

URL = "postgresql+psycopg://app:pg-s3cret@db.test:5432/shop?sslmode=require&application_name=x"
KEY = ("db.test", 5432, "shop")

# EXPLAIN (FORMAT JSON) of "SELECT * FROM orders WHERE customer_id = $1 LIMIT $2", as PostgreSQL 15 prints it.
ORDERS_PLAN = [
    {
        "Plan": {
            "Node Type": "Limit",
            "Parallel Aware": False,
            "Total Cost": 180.0,
            "Plans": [
                {
                    "Node Type": "Seq Scan",
                    "Parent Relationship": "Outer",
                    "Parallel Aware": False,
                    "Relation Name": "orders",
                    "Alias": "orders",
                    "Filter": "(customer_id = $1)",
                }
            ],
        }
    }
]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM orders WHERE customer_id = ?",
        "WITH recent AS (SELECT * FROM orders WHERE at > ?) SELECT count(*) FROM recent",
        "(SELECT id FROM a) UNION (SELECT id FROM b)",
        "SELECT updated_at FROM orders WHERE deleted = ?",  # words that contain a keyword
    ],
)
def test_read_only_selects_are_eligible(statement: str) -> None:
    assert explainable(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE orders SET paid = ? WHERE id = ?",
        "DELETE FROM orders WHERE id = ?",
        "INSERT INTO orders(id) SELECT id FROM staging",
        "WITH moved AS (DELETE FROM q RETURNING *) SELECT * FROM moved",
        "WITH x AS (UPDATE t SET a = ? RETURNING a) SELECT a FROM x",
        "SELECT * FROM jobs WHERE id = ? FOR UPDATE SKIP LOCKED",
        "SELECT * FROM jobs FOR SHARE",
        "SELECT * INTO archive FROM orders",
        "SELECT 1; DROP TABLE orders",
        "EXPLAIN SELECT 1",
        "SET search_path = ?",
        "SELECT * FROM orders WHERE id IN (?, ?, ?,...[truncated]",
        "",
    ],
)
def test_writes_locks_and_oddities_are_never_eligible(statement: str) -> None:
    assert not explainable(statement)


def test_placeholders_become_numbered_parameters_and_quoted_names_stay() -> None:
    assert positional("SELECT * FROM t WHERE a = ? AND b IN (?) LIMIT ?") == (
        "SELECT * FROM t WHERE a = $1 AND b IN ($2) LIMIT $3",
        3,
    )
    assert positional('SELECT "we?ird" FROM t') == ('SELECT "we?ird" FROM t', 0)
    assert positional("SELECT ?::integer") == ("SELECT $1::integer", 1)


def test_plan_summary_names_the_sequential_scan_under_wrappers() -> None:
    plan = summarize_plan(ORDERS_PLAN)
    assert plan == PlanSummary(
        root="Limit", headline="Seq Scan on orders", seq_scans=("orders",), total_cost=180.0
    )


def test_plan_summary_reads_json_text_and_index_scans_and_joins() -> None:
    text = (
        '[{"Plan": {"Node Type": "Sort", "Plans": [{"Node Type": "Hash Join", "Plans": ['
        '{"Node Type": "Index Scan", "Index Name": "orders_pkey", "Relation Name": "orders", "Alias": "o"},'
        '{"Node Type": "Hash", "Plans": [{"Node Type": "Seq Scan", "Parallel Aware": true,'
        ' "Relation Name": "customers", "Alias": "customers"}]}]}]}}]'
    )
    plan = summarize_plan(text)
    assert plan is not None
    assert plan.root == "Sort"
    assert plan.headline == "Parallel Seq Scan on customers"
    assert plan.seq_scans == ("customers",)
    no_scan = summarize_plan(
        [{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Index Scan", "Index Name": "ix",
                                                      "Relation Name": "orders", "Alias": "o"}]}}]
    )  # fmt: skip
    assert no_scan is not None and no_scan.headline == "Index Scan using ix on orders o"
    assert no_scan.seq_scans == ()
    assert summarize_plan([]) is None


def test_plan_hints() -> None:
    seq = PlanSummary("Limit", "Seq Scan on orders", ("orders",))
    assert plan_hint(seq, "SELECT * FROM orders WHERE customer_id = ? LIMIT ?") == (
        "Seq Scan on orders: add an index on orders(customer_id)"
    )
    assert plan_hint(seq, "SELECT * FROM public.orders o WHERE o.customer_id = ?") == (
        "Seq Scan on orders: add an index on public.orders(customer_id)"
    )
    other = PlanSummary("Hash Join", "Seq Scan on customers", ("customers",))
    assert plan_hint(other, "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id").startswith(
        "Seq Scan on customers: an index on the columns"
    )
    index = PlanSummary("Index Scan using ix on orders", "Index Scan using ix on orders")
    assert plan_hint(index, "SELECT * FROM orders WHERE id = ?").startswith(
        "plan: Index Scan using ix on orders (no sequential scan)"
    )


def test_setting_defaults_on_and_can_be_turned_off() -> None:
    assert resolve_settings(environ={}).explain is True
    assert resolve_settings(environ={"OTELPERF_EXPLAIN": "0"}).explain is False
    assert SlowQueryDetector(Settings(explain=False)).explainer is None


# --- the worker, with a recording session in place of the connection --------------------------------


class RecordingSession:
    def __init__(self, log: list[str], fail_on: str | None) -> None:
        self.log = log
        self.fail_on = fail_on

    def execute(self, sql: str) -> None:
        self.log.append(sql)
        if self.fail_on and sql.startswith(self.fail_on):
            raise RuntimeError("refused")

    def value(self, sql: str) -> Any:
        self.execute(sql)
        if sql == "SHOW server_version_num":
            return "150018"
        if sql == "SELECT pg_backend_pid()":
            return 4242
        return ORDERS_PLAN

    def close(self) -> None:
        self.log.append("<close>")


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.log: list[str] = []
        self.targets: list[Target] = []
        self.fail_on = fail_on

    def __call__(self, target: Target, statement_timeout_ms: int) -> RecordingSession:
        self.targets.append(target)
        return RecordingSession(self.log, self.fail_on)


@pytest.fixture(autouse=True)
def _no_targets_left() -> Iterator[None]:
    explain.clear_targets()
    yield
    explain.clear_targets()


def register(url: str = URL) -> None:
    engine = sqlalchemy.create_engine(make_url(url))  # not connected: only its dialect and URL are read
    explain.register_engine(engine.dialect, engine.url)


ATTRS = {"server.address": "db.test", "server.port": 5432, "db.namespace": "shop"}
ORDERS = "SELECT * FROM orders WHERE customer_id = ? LIMIT ?"


def test_target_comes_from_the_url_and_hides_the_password() -> None:
    register()
    target = explain.target_for(ATTRS)
    assert target is not None
    assert (target.host, target.port, target.database, target.user) == ("db.test", 5432, "shop", "app")
    assert target.password == "pg-s3cret"
    assert target.options == (("sslmode", "require"),)  # application_name is ours, not the URL's
    assert "pg-s3cret" not in repr(target)
    assert explain.target_for({**ATTRS, "db.namespace": "other"}) is None
    sqlite = sqlalchemy.create_engine("sqlite://")
    explain.register_engine(sqlite.dialect, sqlite.url)
    assert explain.target_for({}) is None


def test_worker_explains_once_per_fingerprint_with_a_generic_plan() -> None:
    register()
    recorder = Recorder()
    worker = ExplainWorker(connect=recorder, min_interval_s=0.0)
    assert worker.plan_for(ATTRS, "fp1", ORDERS) is None  # queued; the caller never waits
    assert worker.plan_for(ATTRS, "fp1", ORDERS) is None  # already queued: not twice
    assert worker.wait_idle(5)
    assert worker.plan_for(ATTRS, "fp1", ORDERS) == summarize_plan(ORDERS_PLAN)
    assert worker.plan_for(ATTRS, "fp1", ORDERS) is not None
    assert recorder.log == [
        "SHOW server_version_num",
        "SELECT pg_backend_pid()",
        "BEGIN TRANSACTION READ ONLY",
        "SET LOCAL plan_cache_mode = force_generic_plan",
        "PREPARE otelperf_explain_fp1 AS SELECT * FROM orders WHERE customer_id = $1 LIMIT $2",
        "EXPLAIN (FORMAT JSON) EXECUTE otelperf_explain_fp1(NULL, NULL)",
        "DEALLOCATE otelperf_explain_fp1",
        "ROLLBACK",
        "<close>",
    ]
    assert (worker.stats.requested, worker.stats.explained, worker.stats.failed) == (1, 1, 0)
    result = worker.result(KEY, "fp1")
    assert result is not None and result.backend_pid == 4242


def test_worker_skips_writes_unknown_databases_and_counts_failures_once() -> None:
    register()
    recorder = Recorder(fail_on="PREPARE")
    worker = ExplainWorker(connect=recorder, min_interval_s=0.0)
    assert worker.plan_for(ATTRS, "upd", "UPDATE orders SET paid = ? WHERE id = ?") is None
    assert worker.plan_for({"server.address": "elsewhere"}, "fp", ORDERS) is None
    assert worker.wait_idle(5)
    assert recorder.log == [] and worker.stats.ineligible == 1 and worker.stats.requested == 0
    worker.plan_for(ATTRS, "bad", ORDERS)
    assert worker.wait_idle(5)
    worker.plan_for(ATTRS, "bad", ORDERS)
    assert worker.wait_idle(5)
    assert worker.stats.failed == 1 and worker.stats.explained == 0
    assert recorder.log[-2:] == ["ROLLBACK", "<close>"]  # the aborted transaction is ended, then closed
    assert sum(line.startswith("PREPARE") for line in recorder.log) == 1  # never tried again


def test_worker_is_rate_limited_and_its_queue_is_bounded() -> None:
    register()
    recorder = Recorder()
    worker = ExplainWorker(connect=recorder, min_interval_s=0.3, queue_size=2)
    started = time.monotonic()
    for i in range(4):
        worker.plan_for(ATTRS, f"fp{i}", ORDERS)
    assert worker.wait_idle(5)
    elapsed = time.monotonic() - started
    # The first was taken at once; the queue held 2 more, and the 4th found it full and was dropped.
    assert worker.stats.requested + worker.stats.dropped == 4
    assert worker.stats.dropped >= 1
    assert worker.stats.explained == worker.stats.requested
    assert elapsed >= 0.3 * (worker.stats.explained - 1) - 0.05
    worker.plan_for(ATTRS, "fp3", ORDERS)  # a dropped one is asked for again later
    assert worker.wait_idle(5)
    assert worker.result(KEY, "fp3") is not None


def test_later_findings_carry_the_plan_and_its_hint() -> None:
    register()
    worker = ExplainWorker(connect=Recorder(), min_interval_s=0.0)
    detector = SlowQueryDetector(Settings(), None, explainer=worker)

    def request() -> list[Any]:
        attributes = {
            "db.system.name": "postgresql",
            "db.query.text": "SELECT * FROM orders WHERE customer_id = %(c)s LIMIT %(n)s",
            "otelperf.component": "db",
            **ATTRS,
        }
        return detector.analyze(
            build(server("GET /orders", 0, 400, S("SELECT orders", 5, 300, attributes=attributes)))
        )

    [first] = request()
    assert "plan" not in first.details
    assert first.hint == "check the plan: an index on orders(customer_id) may help"
    assert worker.wait_idle(5)
    [later] = request()
    assert later.details["plan"] == "Seq Scan on orders"
    assert later.details["plan_root"] == "Limit"
    assert later.hint == "Seq Scan on orders: add an index on orders(customer_id)"
