"""The slow-query detector over the labeled corpus, its thresholds, overrides and hints."""

from __future__ import annotations

import pytest
from tests.unit.detectors.corpus_sql import BUILDERS, REPORT, Scenario, TraceBuilder, hex_id, run, score

from otelperf.config import Settings
from otelperf.detectors._registry import build_detectors
from otelperf.detectors.slow_query import SlowQueryDetector, index_hint


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_corpus(build: type[Scenario]) -> None:
    scenario = build()
    expected = [e for e in scenario.expected if e.detector == "slow_query"]
    found = run("slow_query", scenario)
    for e in expected:
        assert any(e.matches(f) for f in found), f"missed {e} in {[f.summary() for f in found]}"
    unexpected = [f.summary() for f in found if not any(e.matches(f) for e in expected)]
    assert not unexpected, f"flagged in {scenario.id}: {unexpected}"


def test_precision_and_recall() -> None:
    tp, fp, fn = score("slow_query")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(
        f"\nslow_query over {len(BUILDERS)} scenarios: tp={tp} fp={fp} fn={fn} "
        f"precision={precision:.3f} recall={recall:.3f}"
    )
    assert tp >= 7
    assert precision == 1.0
    assert recall == 1.0


def test_critical_level_and_finding_fields() -> None:
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    first = b.sql(handler, REPORT, 400)
    worst = b.sql(handler, REPORT, 1500)
    b.close(handler)
    view = b.finish()
    (finding,) = SlowQueryDetector(Settings(), None).analyze(view)
    assert finding.severity == "critical"
    assert finding.count == 2
    assert finding.duration_ms == pytest.approx(1900)
    assert finding.anchor_span_id == hex_id(worst)
    assert finding.span_ids == (hex_id(first), hex_id(worst))
    assert finding.route == "GET /orders"
    assert finding.trace_id == view.trace_id
    assert finding.details["max_ms"] == pytest.approx(1500)


def test_settings_thresholds_are_used() -> None:
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    b.sql(handler, REPORT, 60)
    b.close(handler)
    view = b.finish()
    assert SlowQueryDetector(Settings(), None).analyze(view) == []
    (finding,) = SlowQueryDetector(Settings(slow_query_ms=50, slow_query_critical_ms=55), None).analyze(view)
    assert finding.severity == "critical"


def test_override_above_critical_raises_critical_too() -> None:
    """A route allowed 2 s is not 'critical' at 1.2 s: critical is never below the route's own limit."""
    b = TraceBuilder("GET /reports")
    handler = b.open("report")
    b.sql(handler, REPORT, 1200)
    b.sql(handler, "SELECT * FROM big WHERE a = $1", 2500)
    b.close(handler)
    (finding,) = SlowQueryDetector(Settings(), None, overrides={"GET /reports": 2000}).analyze(b.finish())
    assert finding.statement == "SELECT * FROM big WHERE a = ?"
    assert finding.severity == "critical"


def test_statement_override_beats_route_override() -> None:
    b = TraceBuilder("GET /reports")
    handler = b.open("report")
    b.sql(handler, REPORT, 300)
    b.close(handler)
    overrides = {
        "GET /reports": 2000,
        "SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at DESC": 200,
    }
    assert len(SlowQueryDetector(Settings(), None, overrides=overrides).analyze(b.finish())) == 1


def test_only_database_spans_count() -> None:
    b = TraceBuilder("GET /x")
    handler = b.open("x")
    b.redis(handler, "GET", 300)
    b.http(handler, "GET", "http://a/b", 300)
    b.app("render", handler, 300)
    b.close(handler)
    assert SlowQueryDetector(Settings(), None).analyze(b.finish()) == []


@pytest.mark.parametrize(
    ("normalized", "hint"),
    [
        (
            "SELECT * FROM orders WHERE customer_id = ?",
            "check the plan: an index on orders(customer_id) may help",
        ),
        (
            "SELECT orders.id FROM orders WHERE orders.status IN (?) LIMIT ?",
            "check the plan: an index on orders(status) may help",
        ),
        (
            "SELECT o.id FROM shop.orders o WHERE o.sku = ?",
            "check the plan: an index on shop.orders(sku) may help",
        ),
        ("SELECT a FROM t AS x WHERE x.b = ? AND x.c = ?", "check the plan: an index on t(b) may help"),
        (
            "SELECT * FROM orders o JOIN items i ON i.order_id = o.id WHERE o.id = ?",
            "look at the query plan (EXPLAIN)",
        ),
        ("SELECT * FROM orders WHERE total > ?", "look at the query plan (EXPLAIN)"),
        ("SELECT * FROM orders", "look at the query plan (EXPLAIN)"),
        ("UPDATE orders SET paid = ? WHERE id = ?", "look at the query plan (EXPLAIN)"),
        ("SELECT * FROM orders WHERE other.id = ?", "look at the query plan (EXPLAIN)"),
    ],
)
def test_index_hint(normalized: str, hint: str) -> None:
    assert index_hint(normalized) == hint


def test_registry_builds_it_from_settings() -> None:
    (detector,) = build_detectors(Settings(detectors=("slow_query",), slow_query_ms=5), None)
    assert isinstance(detector, SlowQueryDetector)
    assert detector.warning_ms == 5
