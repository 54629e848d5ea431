"""Baseline compare: tolerances, the absolute noise floor, medians, and the file format."""

from __future__ import annotations

import json

import pytest

from otelperf.baseline.model import (
    FORMAT,
    Baseline,
    BaselineError,
    compare,
    format_rows,
    median_routes,
    parse_tolerances,
    regressions,
    verdict,
)

ROUTE = "GET /orders/{order_id}"


def route(**metrics: float) -> dict[str, float]:
    return {"requests": 500.0, **metrics}


def test_regression_needs_both_the_relative_tolerance_and_the_absolute_floor() -> None:
    assert verdict("p95_ms", 2.0, 3.0, tolerance=0.2, min_change=5.0) == "ok"  # +50 % but 1 ms: noise
    assert verdict("p95_ms", 100.0, 115.0, tolerance=0.2, min_change=5.0) == "ok"  # +15 %
    assert verdict("p95_ms", 100.0, 130.0, tolerance=0.2, min_change=5.0) == "REGRESSED"
    assert verdict("p95_ms", 100.0, 60.0, tolerance=0.2, min_change=5.0) == "improved"


def test_throughput_regresses_when_it_drops() -> None:
    assert verdict("rps", 100.0, 70.0, tolerance=0.2, min_change=2.0) == "REGRESSED"
    assert verdict("rps", 100.0, 140.0, tolerance=0.2, min_change=2.0) == "improved"


def test_compare_flags_only_the_slowed_route() -> None:
    base = {
        ROUTE: route(p50_ms=10, p95_ms=20, p99_ms=40),
        "GET /products": route(p50_ms=5, p95_ms=9, p99_ms=12),
    }
    now = {
        ROUTE: route(p50_ms=310, p95_ms=320, p99_ms=340),
        "GET /products": route(p50_ms=6, p95_ms=11, p99_ms=15),
    }
    rows = compare(base, now)
    assert {(r.route, r.metric) for r in regressions(rows)} == {
        (ROUTE, "p50_ms"),
        (ROUTE, "p95_ms"),
        (ROUTE, "p99_ms"),
    }
    table = format_rows(rows)
    assert "baseline: 3 regression(s) in 1 route(s): GET /orders/{order_id}" in table
    line = next(line for line in table.splitlines() if line.startswith(ROUTE) and " p95_ms " in line)
    assert line.split()[-1] == "REGRESSED" and "+300.0 ms (+1500%)" in line


def test_percentiles_of_few_requests_do_not_gate() -> None:
    rows = compare({ROUTE: {"requests": 30, "p99_ms": 40}}, {ROUTE: {"requests": 30, "p99_ms": 400}})
    assert [r.verdict for r in rows] == ["few samples"]
    assert not regressions(rows)


def test_new_and_missing_routes_are_shown_not_failed() -> None:
    rows = compare({"GET /old": route(p95_ms=1)}, {"GET /new": route(p95_ms=1)})
    assert {(r.route, r.verdict) for r in rows} == {("GET /old", "missing"), ("GET /new", "new")}
    assert not regressions(rows)


def test_medians_over_runs_ignore_one_outlier() -> None:
    runs = [{ROUTE: {"p95_ms": 20.0}}, {ROUTE: {"p95_ms": 500.0}}, {ROUTE: {"p95_ms": 22.0}}]
    assert median_routes(runs) == {ROUTE: {"p95_ms": 22.0}}


def test_tolerances_global_then_per_metric() -> None:
    parsed = parse_tolerances(["50%", "p99_ms=100%"], {"p95_ms": 0.2}, percent=True)
    assert parsed["p95_ms"] == 0.5 and parsed["p99_ms"] == 1.0 and parsed["rps"] == 0.5
    assert parse_tolerances(["p95_ms=10"], {"p95_ms": 5.0}, percent=False)["p95_ms"] == 10.0
    with pytest.raises(BaselineError, match="unknown metric 'p42'"):
        parse_tolerances(["p42=1%"], {}, percent=True)
    with pytest.raises(BaselineError, match="absolute number"):
        parse_tolerances(["p95_ms=5%"], {}, percent=False)


def test_json_is_stable_sorted_and_round_trips() -> None:
    baseline = Baseline(
        {"GET /b": {"p95_ms": 12.3456, "error_rate": 0.012345}, "GET /a": {"rps": 3.0}},
        [{"fingerprint": "abc", "total_ms": 10.123}],
        {"service": "shop", "recorded_at": "2026-01-01T00:00:00+00:00"},
    )
    text = baseline.to_json()
    document = json.loads(text)
    assert document["format"] == FORMAT
    assert list(document["routes"]) == ["GET /a", "GET /b"]
    assert document["routes"]["GET /b"] == {"error_rate": 0.0123, "p95_ms": 12.35}
    assert text == json.dumps(document, indent=2, sort_keys=True) + "\n"  # sorted keys, stable text
    assert "recorded_at" not in json.dumps(document["routes"])  # timestamps only in metadata
    again = Baseline.from_json(text)
    assert again.routes["GET /b"]["p95_ms"] == 12.35 and again.metadata["service"] == "shop"
    assert again.to_json() == text


def test_a_foreign_file_is_refused() -> None:
    with pytest.raises(BaselineError, match="not an otelperf baseline"):
        Baseline.from_json('{"routes": {}}', "x.json")
