"""breakdown(): a request's time split into db / cache / http / app, on real SDK spans."""

from __future__ import annotations

import math

import pytest
from tests.unit.detectors.corpus_budget import (
    SQL_ITEMS,
    SQL_ORDERS,
    app,
    build,
    cache,
    db,
    gather_two_queries,
    http,
    http_with_in_process_handler,
    nested_connect_inside_query,
    orders_400ms_db_300,
    redis_get,
    server,
)

from otelperf.detectors._api import TraceView, duration_ms
from otelperf.detectors.breakdown import attribute, breakdown, top_offenders


def assert_sums_to_root(view: TraceView, parts: dict[str, float]) -> None:
    assert math.isclose(sum(parts.values()), duration_ms(view.root), abs_tol=1e-9)


def test_sequential_queries_db_300_of_400() -> None:
    view = build(orders_400ms_db_300())
    parts = breakdown(view)
    assert parts == {"db": 300.0, "cache": 0.0, "http": 0.0, "app": 100.0}
    assert_sums_to_root(view, parts)


def test_gathered_queries_are_counted_once() -> None:
    view = build(gather_two_queries())
    parts = breakdown(view)
    # Two 100 ms queries over the same 100 ms: 100 ms of db, not 200.
    assert parts == {"db": 100.0, "cache": 50.0, "http": 0.0, "app": 100.0}
    assert_sums_to_root(view, parts)


def test_partially_overlapping_siblings_go_to_the_one_started_last() -> None:
    view = build(server("GET /x", 0, 200, db(SQL_ORDERS, 0, 100), http("GET", "http://a/b", 50, 150)))
    assert breakdown(view) == {"db": 50.0, "cache": 0.0, "http": 100.0, "app": 50.0}


def test_in_process_handler_under_an_http_call_is_app_and_db_again() -> None:
    view = build(http_with_in_process_handler())
    parts = breakdown(view)
    # root 0-200, http 20-180, the handler (SERVER) 40-160, its query 60-110.
    assert parts == {"db": 50.0, "cache": 0.0, "http": 40.0, "app": 110.0}
    assert_sums_to_root(view, parts)


def test_driver_span_inside_a_query_is_db_time() -> None:
    view = build(nested_connect_inside_query())
    assert breakdown(view) == {"db": 200.0, "cache": 0.0, "http": 0.0, "app": 100.0}


def test_app_span_wrapping_queries_leaves_its_own_time_to_app() -> None:
    view = build(
        server(
            "GET /report",
            0,
            500,
            app("render", 100, 400, db(SQL_ORDERS, 150, 250), redis_get(300, 320, hit=True)),
        )
    )
    assert breakdown(view) == {"db": 100.0, "cache": 20.0, "http": 0.0, "app": 380.0}


def test_children_outside_the_root_are_clipped() -> None:
    # A background task's query that outlives the request, and one that started before it (clock skew).
    view = build(server("GET /x", 0, 100, db(SQL_ORDERS, -20, 30), db(SQL_ITEMS, 80, 300)))
    parts = breakdown(view)
    assert parts == {"db": 50.0, "cache": 0.0, "http": 0.0, "app": 50.0}
    assert_sums_to_root(view, parts)


def test_spans_of_another_request_are_ignored() -> None:
    view = build(orders_400ms_db_300())
    other = build(server("GET /other", 0, 400, db(SQL_ITEMS, 0, 400)))
    mixed = TraceView(view.root, [*view.spans, *other.spans])
    assert breakdown(mixed) == {"db": 300.0, "cache": 0.0, "http": 0.0, "app": 100.0}


def test_request_without_children_is_all_app_and_empty_root_is_zero() -> None:
    assert breakdown(build(server("GET /ping", 0, 7.5))) == {"db": 0.0, "cache": 0.0, "http": 0.0, "app": 7.5}
    assert breakdown(build(server("GET /ping", 5, 5))) == {"db": 0.0, "cache": 0.0, "http": 0.0, "app": 0.0}


def test_many_gathered_queries_stay_exact() -> None:
    queries = [db(f"SELECT {i}", 10 + i, 110 + i) for i in range(200)]
    view = build(server("GET /fanout", 0, 400, *queries))
    # Their union is 10..309 ms: 299 ms of db, whatever the overlap.
    parts = breakdown(view)
    assert parts["db"] == pytest.approx(299.0)
    assert parts["app"] == pytest.approx(101.0)
    assert_sums_to_root(view, parts)


def test_top_offenders_group_by_statement_by_exclusive_time() -> None:
    view = build(orders_400ms_db_300())
    top = top_offenders(view)
    assert [(o.statement, o.component, o.count, o.exclusive_ms) for o in top] == [
        (SQL_ORDERS, "db", 2, 200.0),
        (SQL_ITEMS, "db", 1, 100.0),
    ]
    ids = {format(s.context.span_id, "016x") for s in view.spans if s.name == "SELECT"}
    assert set(top[0].span_ids) | set(top[1].span_ids) == ids


def test_top_offenders_count_exclusive_time_and_limit_n() -> None:
    view = build(
        server(
            "GET /mixed",
            0,
            300,
            app("render", 0, 200, db(SQL_ORDERS, 50, 100)),
            cache("local", 210, 230, hit=True),
            http("GET", "http://a/b", 230, 290),
        )
    )
    top = top_offenders(view, n=2)
    # render: 200 ms minus its 50 ms query = 150 ms exclusive.
    assert [(o.statement, o.exclusive_ms) for o in top] == [("render", 150.0), ("GET", 60.0)]
    assert len(attribute(view).offenders) == 4


def test_root_itself_is_never_an_offender() -> None:
    assert top_offenders(build(server("GET /ping", 0, 100))) == []


def test_a_span_listed_twice_counts_once() -> None:
    view = build(orders_400ms_db_300())
    doubled = TraceView(view.root, [*view.spans, *[s for s in view.spans if s is not view.root]])
    assert breakdown(doubled) == {"db": 300.0, "cache": 0.0, "http": 0.0, "app": 100.0}
    assert [o.count for o in top_offenders(doubled)] == [2, 1]
