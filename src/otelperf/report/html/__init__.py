"""``otelperf report --html FILE``: an offline HTML report of a run, from Prometheus and Jaeger.

Map:
- ``prom``: the report's time window (the Prometheus client is :mod:`otelperf.backends`)
- ``jaeger``: example traces of findings (a Jaeger search per route with findings)
- ``collect``: the PromQL, turning the backends' answers into ``model.ReportData``
- ``sources``: the budgets (``otelperf.budgets``) and baseline files
- ``svg``: inline SVG line charts; ``waterfall_svg``: a finding's example trace as an SVG waterfall
  (the layout is :mod:`otelperf.report.waterfall`); ``page``: the HTML document

    data = collect_report(Prometheus("http://127.0.0.1:9090"), Window.since("15m"), service="shop")
    Path("report.html").write_text(render(data))
"""

from __future__ import annotations

from otelperf.backends.jaeger import JAEGER_URL
from otelperf.budgets import Budgets
from otelperf.report.html.collect import Collector
from otelperf.report.html.model import BaselineRoute, ReportData
from otelperf.report.html.page import render
from otelperf.report.html.prom import Prometheus, PrometheusQueryError, PrometheusUnreachable, Window
from otelperf.report.html.sources import BaselineError, budget_lookup, load_baseline

__all__ = [
    "BaselineError",
    "Prometheus",
    "PrometheusQueryError",
    "PrometheusUnreachable",
    "ReportData",
    "Window",
    "collect_report",
    "load_baseline",
    "render",
]


def collect_report(
    prometheus: Prometheus,
    window: Window,
    *,
    service: str = "",
    jaeger: str = JAEGER_URL,
    budgets: Budgets | None = None,
    baseline: dict[str, BaselineRoute] | None = None,
    baseline_source: str = "",
) -> ReportData:
    """Read everything the report shows. Raises PrometheusUnreachable (the backends' BackendError)
    / PrometheusQueryError."""
    prometheus.check()
    budgets = budgets or Budgets()
    data = Collector(prometheus, window, service, jaeger, budget_lookup(budgets)).collect()
    data.service_min_rps = budgets.default.min_rps
    data.baseline, data.baseline_source = baseline, baseline_source
    return data
