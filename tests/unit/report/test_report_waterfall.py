"""The waterfall layout: order, nesting, offsets, components, findings and their spans, call sites,
and the bounds (folding repeated siblings, the row limit) on a 10,000-span trace."""

from __future__ import annotations

import pytest
from tests.unit.report.traces import CALL_SITE, SQL_ITEMS, S, db, finding, n_plus_one_trace, span_id, trace

from otelperf.report.waterfall import CallSite, build, format_duration


def test_rows_go_depth_first_by_start_time_with_depth_as_indentation() -> None:
    # Given out of order, as Jaeger may return them.
    t = trace(
        [
            S("b2", "b2", 30, 35, "b"),
            S("a", "a", 2, 10, "root"),
            S("root", "GET /", 0, 50, kind=2),
            S("b", "b", 20, 40, "root"),
            S("a1", "a1", 3, 4, "a"),
            S("b1", "b1", 21, 25, "b"),
        ]
    )
    rows = build(t).rows
    assert [(r.name, r.depth) for r in rows] == [
        ("GET /", 0),
        ("a", 1),
        ("a1", 2),
        ("b", 1),
        ("b1", 2),
        ("b2", 2),
    ]


def test_offsets_and_widths_are_relative_to_the_trace_start() -> None:
    t = trace([S("root", "GET /", 0, 40, kind=2), S("q", "q", 10, 20, "root")])
    w = build(t)
    assert w.duration_ms == pytest.approx(40)
    q = w.rows[1]
    assert (q.offset_ms, q.duration_ms) == (pytest.approx(10), pytest.approx(10))
    assert w.fraction(q) == (pytest.approx(0.25), pytest.approx(0.25))
    assert w.fraction(w.rows[0]) == (pytest.approx(0.0), pytest.approx(1.0))


def test_a_span_whose_parent_is_missing_is_a_root_and_a_parent_cycle_loses_no_span() -> None:
    t = trace(
        [
            S("root", "GET /", 0, 10, kind=2),
            S("orphan", "orphan", 5, 6, "gone"),
            S("x", "x", 20, 21, "y"),
            S("y", "y", 22, 23, "x"),
        ]
    )
    rows = build(t).rows
    assert sorted(r.name for r in rows) == ["GET /", "orphan", "x", "y"]
    assert {r.name: r.depth for r in rows}["orphan"] == 0


def test_components_follow_the_detectors_rule() -> None:
    t = n_plus_one_trace(repeats=2)
    by_name = {(r.name, r.component) for r in build(t).rows}
    assert ("GET /orders", "app") in by_name
    assert ("list_orders", "app") in by_name
    assert ("SELECT shop", "db") in by_name
    assert ("GET", "cache") in by_name  # Redis is cache
    assert ("GET", "http") in by_name  # a CLIENT span with an HTTP method
    named = trace([S("c", "lookup", 0, 1, attrs={"otelperf.component": "cache"})])
    assert build(named).rows[0].component == "cache"


def test_the_n_plus_one_statements_are_offending_from_the_event_on_their_parent() -> None:
    # Today's finding events may carry no span ids: the repeats are found under the event's span.
    w = build(n_plus_one_trace(repeats=6))
    offending = [r for r in w.rows if r.offending]
    assert len(offending) == 6  # five, then a "fold" of one, which is shown as the span it is
    assert all(r.statement == SQL_ITEMS for r in offending)
    orders = next(r for r in w.rows if "FROM orders" in r.statement)
    assert not orders.offending
    handler = next(r for r in w.rows if r.name == "list_orders")
    assert not handler.offending and not handler.findings
    # The finding is told under the last of its statements (after the loop).
    told = [r for r in w.rows if r.findings]
    assert told == [offending[-1]]
    assert [m.detector for m in told[0].findings] == ["n_plus_one"]
    assert told[0].findings[0].hint.startswith("load the related rows")
    assert told[0].findings[0].anchor_span_id == handler.span_id


def test_the_span_ids_a_finding_event_lists_are_the_offending_ones() -> None:
    t = n_plus_one_trace(repeats=3, with_ids=True)
    w = build(t)
    assert {r.span_id for r in w.rows if r.offending} == {span_id(f"item{i}") for i in range(3)}


def test_a_slow_query_event_marks_its_own_span_and_focus_picks_the_finding() -> None:
    t = trace(
        [
            S("root", "GET /", 0, 100, kind=2, events=[finding("latency_budget", 1)]),
            db("slow", 1, 90, "root", events=[finding("slow_query", 1)]),
            db("fast", 91, 92, "root"),
        ]
    )
    slow = build(t, focus=lambda m: m.detector == "slow_query")
    assert [r.span_id for r in slow.rows if r.offending] == [span_id("slow")]
    assert [m.detector for m in slow.findings] == ["latency_budget", "slow_query"]
    budget = build(t, focus=lambda m: m.detector == "latency_budget")
    assert not budget.offending_rows  # a budget finding on the request marks no single span
    assert [m.detector for m in budget.rows[0].findings] == ["latency_budget"]


def test_the_call_site_comes_from_the_code_attributes() -> None:
    w = build(n_plus_one_trace(repeats=2))
    item = next(r for r in w.rows if r.offending)
    assert item.call_site == CallSite("/srv/shop/app/routes.py", 42, "list_orders")
    assert item.call_site.short() == "app/routes.py:42 list_orders()"
    assert str(item.call_site) == "/srv/shop/app/routes.py:42 list_orders()"
    assert next(r for r in w.rows if r.name == "GET /orders").call_site is None
    # A finding event that names its call site (issue 14, part 1) carries it too.
    t = trace([S("root", "GET /", 0, 10, kind=2, events=[finding("n_plus_one", 5, **CALL_SITE)])])
    assert build(t).findings[0].call_site == CallSite("/srv/shop/app/routes.py", 42, "list_orders")


def test_repeated_siblings_past_the_limit_fold_into_one_row() -> None:
    w = build(n_plus_one_trace(repeats=40), fold_after=5)
    items = [r for r in w.rows if r.statement == SQL_ITEMS]
    assert [r.kind for r in items] == ["span"] * 5 + ["fold"]
    fold = items[-1]
    assert fold.count == 35 and fold.offending
    assert fold.offset_ms == pytest.approx(10 + 5 * 5)  # where the sixth starts
    assert fold.duration_ms == pytest.approx((13 + 5 * 39) - (10 + 5 * 5))  # to the last one's end
    assert fold.busy_ms == pytest.approx(35 * 3)
    # The other children keep their place after the fold.
    assert [r.name for r in w.rows][-2:] == ["GET", "GET"]


def test_interleaved_shapes_fold_each_shape_apart() -> None:
    spans = [S("root", "GET /", 0, 1000, kind=2)]
    for i in range(20):
        spans.append(db(f"a{i}", 10 * i, 10 * i + 2, "root", statement="SELECT a"))
        spans.append(db(f"b{i}", 10 * i + 3, 10 * i + 5, "root", statement="SELECT b"))
    rows = build(trace(spans), fold_after=3).rows
    assert [(r.statement, r.kind, r.count) for r in rows[1:]] == [
        ("SELECT a", "span", 1),
        ("SELECT b", "span", 1),
        ("SELECT a", "span", 1),
        ("SELECT b", "span", 1),
        ("SELECT a", "span", 1),
        ("SELECT b", "span", 1),
        ("SELECT a", "fold", 17),
        ("SELECT b", "fold", 17),
    ]


def test_a_ten_thousand_span_trace_stays_bounded_and_keeps_its_offending_spans() -> None:
    # 100 orders, each with a handler span and 99 lazy loads, a finding event listing ids of the
    # last order's loads: folding keeps each order's first loads, the row limit cuts the rest.
    spans = [S("root", "GET /orders", 0, 100_000, kind=2)]
    for o in range(100):
        spans.append(S(f"o{o}", f"order {o}", o * 1000, o * 1000 + 999, "root"))
        spans += [db(f"o{o}q{q}", o * 1000 + q * 10, o * 1000 + q * 10 + 5, f"o{o}") for q in range(98)]
    listed = [span_id(f"o99q{q}") for q in range(98)]
    spans[0].events.append(finding("n_plus_one", 98, **{"otelperf.finding.span_ids": listed}))
    t = trace(spans)
    assert len(t.spans) == 1 + 100 * 99 == 9901
    w = build(t, fold_after=5, max_rows=200)
    assert w.span_count == 9901
    assert len(w.rows) <= 200 + 10
    more = w.rows[-1]
    assert more.kind == "more" and "more spans" in more.name
    # Every span is accounted for: shown, in a fold, or in the "more" row.
    accounted = sum(r.count for r in w.rows)
    assert accounted == 9901
    last_order = [r for r in w.rows if r.span_id in {span_id(f"o99q{q}") for q in range(6)}]
    assert last_order and all(r.offending for r in last_order)  # kept past the limit
    parent = next(r for r in w.rows if r.name == "order 99")  # with their parent, where they belong
    assert w.rows.index(parent) == w.rows.index(last_order[0]) - 1 and parent.depth == 1
    assert not any(r.name == "order 98" for r in w.rows)


def test_a_ten_thousand_deep_chain_does_not_recurse() -> None:
    spans = [S("n0", "n0", 0, 20_000, kind=2)]
    spans += [S(f"n{i}", f"n{i}", i, 20_000 - i, f"n{i - 1}") for i in range(1, 10_000)]
    w = build(trace(spans), max_rows=50)
    assert [r.depth for r in w.rows[:50]] == list(range(50))
    assert w.rows[-1].count == 10_000 - 50


def test_durations_read_in_ms_or_s() -> None:
    assert [format_duration(v) for v in (0.012, 9.999, 12.34, 999.0, 1234.0, 98_765.0)] == [
        "0.01 ms",
        "10.0 ms",
        "12.3 ms",
        "999.0 ms",
        "1.23 s",
        "98.8 s",
    ]


def test_an_empty_trace_is_an_error() -> None:
    from otelperf.backends.jaeger import Trace

    with pytest.raises(ValueError, match="no spans"):
        build(Trace("0" * 32, ()))
