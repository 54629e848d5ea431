"""The N+1 detector over the labeled corpus, and once through the real pipeline with SQLite."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text
from tests.unit.detectors.corpus_sql import (
    BUILDERS,
    ITEMS,
    ITEMS_N,
    T0,
    Scenario,
    TraceBuilder,
    hex_id,
    n1_per_batch_parents,
    n1_with_pool_spans,
    run,
    score,
)

from otelperf import _names
from otelperf.config import Settings
from otelperf.detectors._api import TraceView
from otelperf.detectors.fingerprint import statement_fingerprint
from otelperf.detectors.n_plus_one import NPlusOneDetector, path_template
from otelperf.detectors.slow_query import SlowQueryDetector
from otelperf.testing import capture, stop_capture


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_corpus(build: Callable[[], Scenario]) -> None:
    scenario = build()
    expected = [e for e in scenario.expected if e.detector == "n_plus_one"]
    found = run("n_plus_one", scenario)
    for e in expected:
        assert any(e.matches(f) for f in found), f"missed {e} in {[f.summary() for f in found]}"
    unexpected = [f.summary() for f in found if not any(e.matches(f) for e in expected)]
    assert not unexpected, f"flagged in {scenario.id}: {unexpected}"


def test_precision_and_recall() -> None:
    tp, fp, fn = score("n_plus_one")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(
        f"\nn_plus_one over {len(BUILDERS)} scenarios: tp={tp} fp={fp} fn={fn} "
        f"precision={precision:.3f} recall={recall:.3f}"
    )
    assert tp >= 13
    assert precision == 1.0
    assert recall == 1.0


def test_finding_fields() -> None:
    scenario = n1_with_pool_spans()
    (finding,) = run("n_plus_one", scenario)
    sql_spans = [s for s in scenario.view.spans if (s.attributes or {}).get("db.query.text") == ITEMS]
    assert finding.span_ids == tuple(format(s.context.span_id, "016x") for s in sql_spans)
    assert finding.fingerprint == statement_fingerprint(ITEMS)[1]
    # Its time is the loop's window (first repeat's start to last one's end: the pool spans and
    # gaps between the statements included), the statements' own time is in the details.
    window_ms = (sql_spans[-1].end_time - sql_spans[0].start_time) / 1e6
    assert window_ms > 7 * 9
    assert finding.duration_ms == pytest.approx(window_ms)
    assert finding.details["window_ms"] == pytest.approx(window_ms)
    assert finding.details["statements_ms"] == pytest.approx(7 * 9)
    assert finding.severity == "warning"
    assert finding.hint == (
        "run one `IN` query for all of them: SELECT items.id, items.name FROM items"
        " WHERE items.order_id IN (?), instead of the 7 queries"
    )
    assert finding.details["count"] == 7
    assert finding.details["parents"] == 1
    assert finding.details["first_offset_ms"] == pytest.approx((sql_spans[0].start_time - T0) / 1e6)
    assert finding.details["last_offset_ms"] == pytest.approx((sql_spans[-1].start_time - T0) / 1e6)


def test_several_parents_are_one_finding() -> None:
    (finding,) = run("n_plus_one", n1_per_batch_parents())
    assert finding.details["parents"] == 2
    assert finding.count == 12


def test_thresholds_come_from_settings() -> None:
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    for _ in range(3):
        b.sql(handler, ITEMS, 2)  # a window of 6.1 ms: 3 x 2 ms and the 0.05 ms gaps between them
    b.app("render", handler, 100)  # a long request: the loop is no large share of it
    b.close(handler)
    view = b.finish()
    assert NPlusOneDetector(Settings(), None).analyze(view) == []
    (finding,) = NPlusOneDetector(Settings(n_plus_one_min_count=3, n_plus_one_min_ms=6.1), None).analyze(view)
    assert finding.statement == ITEMS_N
    assert NPlusOneDetector(Settings(n_plus_one_min_count=3, n_plus_one_min_ms=6.2), None).analyze(view) == []
    assert NPlusOneDetector(Settings(n_plus_one_min_count=4, n_plus_one_min_ms=6.1), None).analyze(view) == []


def test_a_loop_that_is_a_third_of_a_fast_request_is_an_n_plus_one() -> None:
    """The share rule: a window of at least a third of the request and a fifth of min_ms."""

    def view(render_ms: float) -> TraceView:
        b = TraceBuilder("GET /orders")
        handler = b.open("orders")
        for _ in range(5):
            b.sql(handler, ITEMS, 0.05, gap_ms=2.95)  # a window of 12.05 ms, 0.25 ms of statements
        b.app("render", handler, render_ms)
        b.close(handler)
        return b.finish()

    detector = NPlusOneDetector(Settings(), None)
    (finding,) = detector.analyze(view(render_ms=15))  # a 31 ms request: over a third
    assert finding.duration_ms == pytest.approx(12.05)
    assert finding.details["statements_ms"] == pytest.approx(0.25)
    assert detector.analyze(view(render_ms=30)) == []  # a 46 ms request: under a third
    # The floor is a fifth of min_ms: 12.05 ms is under a fifth of 62 ms.
    assert NPlusOneDetector(Settings(n_plus_one_min_ms=62), None).analyze(view(render_ms=15)) == []


def test_writes_in_a_loop_get_a_write_hint() -> None:
    b = TraceBuilder("POST /import")
    handler = b.open("import")
    for i in range(6):
        b.sql(handler, f"INSERT INTO lines (a) VALUES ({i})", 10, legacy=True)
    b.close(handler)
    (finding,) = NPlusOneDetector(Settings(), None).analyze(b.finish())
    assert finding.statement == "INSERT INTO lines(a) VALUES (?)"
    assert finding.hint == "batch the writes: executemany() or one multi-row statement: the 6 statements"


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/items/42", "/items/{id}"),
        ("/items/42/photos/7", "/items/{id}/photos/{id}"),
        ("/users/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/users/{id}"),
        ("/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/{id}"),
        ("/v1/users/me", "/v1/users/me"),
        ("/v2/feed", "/v2/feed"),
        ("/cafe", "/cafe"),  # hex letters, but a word
        ("/", "/"),
    ],
)
def test_path_template(path: str, template: str) -> None:
    assert path_template(path) == template


def _big_trace(spans: int) -> TraceBuilder:
    """A request of ``spans`` spans: handler, an N+1, repeated Redis and HTTP reads, app spans."""
    b = TraceBuilder("GET /big")
    handler = b.open("handler")
    made = 2
    i = 0
    while made < spans:
        kind = i % 5
        if kind == 0:
            b.sql(handler, ITEMS, 2)
        elif kind == 1:
            b.sql(handler, f"SELECT * FROM t{i % 7} WHERE id = $1", 1)
        elif kind == 2:
            b.redis(handler, "GET", 0.3)
        elif kind == 3:
            b.http(handler, "GET", f"http://svc/items/{i}", 3)
        else:
            b.app("render", handler, 0.2)
        made += 1
        i += 1
    b.close(handler)
    return b


def test_cost_per_span() -> None:
    """analyze() is linear in spans; prints microseconds per span for a 100-span request."""
    view = _big_trace(100).finish()
    assert len(view.spans) == 100
    detectors = [NPlusOneDetector(Settings(), None), SlowQueryDetector(Settings(), None)]
    for detector in detectors:
        detector.analyze(view)  # warm the caches, as in a running service
    rounds = 200
    results = {}
    for detector in detectors:
        start = time.perf_counter()
        for _ in range(rounds):
            detector.analyze(view)
        results[detector.name] = (time.perf_counter() - start) / rounds / len(view.spans) * 1e6
    print(
        "\nanalyze() per span on a 100-span request: "
        + ", ".join(f"{k} {v:.2f} us" for k, v in results.items())
    )
    # Generous: a few microseconds is expected; a regex or a rescan per span would be far above this.
    assert all(us < 50 for us in results.values()), results
    # Linear: ten times the spans is not a hundred times the work.
    big = _big_trace(1000).finish()
    n1 = detectors[0]
    n1.analyze(big)
    start = time.perf_counter()
    for _ in range(20):
        n1.analyze(big)
    per_span_big = (time.perf_counter() - start) / 20 / len(big.spans) * 1e6
    assert per_span_big < 4 * results["n_plus_one"] + 5, (per_span_big, results)


def test_through_the_pipeline_with_sqlite() -> None:
    cap = capture(detectors="slow_query,n_plus_one", n_plus_one_min_ms=0)
    try:
        engine = create_engine("sqlite://")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER)"))
            conn.execute(text("INSERT INTO items (order_id) VALUES (1), (2), (3), (4), (5), (6)"))
        tracer = cap.runtime.tracer
        assert tracer is not None
        with (
            tracer.start_as_current_span("GET /orders") as root,
            tracer.start_as_current_span("load") as parent,
            engine.connect() as conn,
        ):
            for order_id in range(1, 7):
                line = sys._getframe().f_lineno + 1  # the statement's call site
                conn.execute(text("SELECT id FROM items WHERE order_id = :oid"), {"oid": order_id})
        assert cap.runtime.tracer_provider is not None
        assert cap.runtime.tracer_provider.force_flush()

        exported = {s.context.span_id: s for s in cap.spans}
        load = exported[parent.get_span_context().span_id]
        events = [e for e in load.events if e.name == _names.FINDING_EVENT]
        assert len(events) == 1
        attributes = events[0].attributes or {}
        assert attributes[_names.FINDING_DETECTOR] == "n_plus_one"
        assert attributes[_names.FINDING_STATEMENT] == "SELECT id FROM items WHERE order_id = ?"
        assert attributes[_names.FINDING_COUNT] == 6
        fingerprint = statement_fingerprint("SELECT id FROM items WHERE order_id = ?")[1]
        assert attributes[_names.FINDING_FINGERPRINT] == fingerprint
        # Where it ran: the code.* attributes of the loop's line, and the same as text.
        assert attributes[_names.CODE_FILE_PATH] == __file__
        assert attributes[_names.CODE_LINE_NUMBER] == line
        assert attributes[_names.CODE_FUNCTION_NAME] == "test_through_the_pipeline_with_sqlite"
        site = f"{os.path.relpath(__file__)}:{line} in test_through_the_pipeline_with_sqlite()"
        assert attributes[_names.FINDING_CALL_SITE] == site
        assert attributes[_names.FINDING_WINDOW_MS] > 0

        exported_root = exported[root.get_span_context().span_id]
        assert (exported_root.attributes or {})[_names.FINDINGS_COUNT] == 1

        assert cap.runtime.findings is not None
        (finding,) = cap.runtime.findings.recent()
        assert finding.detector == "n_plus_one"
        assert finding.route == "GET /orders"
        assert finding.anchor_span_id == hex_id(parent)  # type: ignore[arg-type]

        points = cap.metric_points(_names.METRIC_FINDINGS)
        (point,) = points
        assert {k: point.attributes[k] for k in ("detector", "route", "fingerprint", "severity")} == {
            "detector": "n_plus_one",
            "route": "GET /orders",
            "fingerprint": fingerprint,
            "severity": "warning",
        }
        assert point.attributes["call_site"] == site
        assert point.value == 1
    finally:
        stop_capture(cap)
