from __future__ import annotations

from tests.e2e._backend import StackUrls
from tests.e2e.dashboards_check import check_dashboard_queries, panel_queries


def test_every_dashboard_query_parses_in_prometheus(stack: StackUrls) -> None:
    queries = panel_queries()
    assert len(queries) > 40
    assert {q.dashboard for q in queries} == {
        "otelperf-red",
        "otelperf-backend",
        "otelperf-findings",
        "otelperf-host",
        "otelperf-loadtest",
    }
    assert not any("$" in q.expr for q in queries)
    problems = check_dashboard_queries(stack.prometheus, require_data=False)
    assert problems == []


def test_a_broken_query_is_reported(stack: StackUrls, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad.json").write_text(
        '{"panels": [{"title": "bad", "targets": [{"expr": "sum(rate(x[$__rate_interval])"}]}]}'
    )
    [problem] = check_dashboard_queries(stack.prometheus, require_data=False, directory=tmp_path)
    assert problem.startswith("bad / bad: sum(rate(x[1m])") and "bad_data" in problem
