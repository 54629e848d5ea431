"""The report's inputs: time window, budgets lookup, baseline files, and the command's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otelperf.budgets import load_budgets
from otelperf.report.html.model import BaselineRoute, Budget
from otelperf.report.html.prom import Window, parse_duration, parse_time
from otelperf.report.html.sources import BaselineError, budget_lookup, load_baseline


def test_window_steps_are_whole_scrapes() -> None:
    w = Window.of(1000.4, 1900.2)
    assert (w.start, w.end) == (1000.0, 1901.0)
    assert w.step % 5 == 0 and 60 <= w.seconds / w.step <= 120
    assert Window.of(0, 30).step == 5  # never finer than the scrape interval
    assert Window.of(0, 30).rate_range == 20
    with pytest.raises(ValueError, match="must end after"):
        Window.of(10, 10)


def test_durations_and_times() -> None:
    assert parse_duration("15m") == 900 and parse_duration("2h") == 7200 and parse_duration("30s") == 30
    with pytest.raises(ValueError, match="not a duration: 'soon'"):
        parse_duration("soon")
    assert parse_time("2026-11-27T13:00:00Z") == parse_time("1795784400")
    assert parse_time("2026-11-27T13:00:00") == 1795784400  # naive means UTC
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


def test_budget_lookup_uses_named_routes_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "otelperf.toml"
    path.write_text(
        '[defaults]\np95 = "300ms"\nerror_rate = "2%"\nmin_rps = 50\n'
        '[routes."GET /orders"]\np95 = "200ms"\np99 = "400ms"\nmin_rps = 5\n'
    )
    lookup = budget_lookup(load_budgets(path))
    assert lookup("GET /orders") == Budget(200, 400, 0.02, 5)
    # the default floor is the whole service's, not each route's
    assert lookup("GET /other") == Budget(300, None, 0.02, None)


def test_baseline_object_and_list_shapes(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"routes": {"GET /x": {"p95_ms": 40, "rps": 12.5, "extra": "ignored"}}}))
    assert load_baseline(path) == {"GET /x": BaselineRoute(p95_ms=40.0, rps=12.5)}
    path.write_text(json.dumps({"routes": [{"route": "GET /y", "p50_ms": 1, "error_rate": 0.01}]}))
    assert load_baseline(path) == {"GET /y": BaselineRoute(p50_ms=1.0, error_rate=0.01)}


def test_baseline_recorded_by_otelperf_baseline_record(tmp_path: Path) -> None:
    from otelperf.baseline.model import Baseline

    path = tmp_path / "recorded.json"
    Baseline(routes={"GET /z": {"p95_ms": 12.5, "rps": 3.0, "queries_per_request": 2.0}}).write(path)
    assert load_baseline(path) == {"GET /z": BaselineRoute(p95_ms=12.5, rps=3.0)}
    path.write_text(json.dumps({"format": "something-else/9", "routes": {}}))
    with pytest.raises(BaselineError, match="not an otelperf baseline"):
        load_baseline(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", 'with a "routes" key'),
        ('{"routes": {"GET /x": {"p95_ms": "fast"}}}', "routes.GET /x.p95_ms: expected a number, got 'fast'"),
        ('{"routes": [{"p95_ms": 1}]}', 'needs objects with a "route" key'),
    ],
)
def test_bad_baseline_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(BaselineError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_baseline(path)
