"""Read a run's numbers from Prometheus (and example traces from Jaeger) into a ReportData.

Counters and histogram buckets are read as their exact growth over a range (see
``otelperf.report.growth``), not with ``rate()``: a short-lived process (a test run, a load run's
worker) makes series whose first scrape already holds its counts, which ``rate()`` reads as 0.
Each chart point looks back ``Window.rate_range`` seconds; the totals look back over the window.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from otelperf.backends import BackendError, Jaeger, Prometheus, RangeSeries, Sample
from otelperf.backends.jaeger import JAEGER_URL, Trace
from otelperf.report import growth
from otelperf.report.html.flame import route_flames
from otelperf.report.html.jaeger import finding_traces
from otelperf.report.html.model import (
    QUANTILES,
    Budget,
    DbOperation,
    Finding,
    ReportData,
    RouteFlame,
    RouteReport,
    Series,
)
from otelperf.report.html.prom import Window, promql_duration

HTTP = "http_server_request_duration_seconds"
CLIENT = "otelperf_loadtest_request_duration_seconds"
SPANS = "traces_span_metrics_duration_seconds"
FINDINGS = "otelperf_findings_total"
FINDINGS_TIME = "otelperf_findings_time_milliseconds_total"
ROUTE_LABELS = "http_request_method, http_route"
FINDING_LABELS = "job, detector, severity, route, fingerprint, statement, expected, call_site"
_FINDING_KEYS = tuple(label.strip() for label in FINDING_LABELS.split(","))


def label_value(value: str) -> str:
    """A PromQL string literal's body (service names come from the command line)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def route_name(metric: dict[str, str]) -> str:
    method, route = metric.get("http_request_method", ""), metric.get("http_route", "")
    return f"{method} {route}".strip() or "(no route)"


def _finite(value: float) -> float | None:
    """NaN/Inf (a quantile over no requests) reads as "no value"."""
    return value if math.isfinite(value) else None


def _matrix(
    rows: list[RangeSeries], key: Callable[[dict[str, str]], str], scale: float = 1.0
) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for row in rows:
        points: Series = []
        for t, v in row.points:
            value = _finite(v)
            points.append((t, None if value is None else value * scale))
        out[key(dict(row.labels))] = points
    return out


def _vector(rows: list[Sample], key: Callable[[dict[str, str]], str], scale: float = 1.0) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        if row.finite is not None:
            out[key(dict(row.labels))] = row.finite * scale
    return out


def _fill(series: Series, window: Window) -> Series:
    """Every step of the window, None where Prometheus had no sample (a gap, not a drop to 0)."""
    known = {round(t, 3): v for t, v in series}
    out: Series = []
    t = window.start
    while t <= window.end + 1e-6:
        out.append((t, known.get(round(t, 3))))
        t += window.step
    return out


class Collector:
    def __init__(
        self,
        prometheus: Prometheus,
        window: Window,
        service: str = "",
        jaeger: str = JAEGER_URL,
        budget_for: Callable[[str], Budget | None] | None = None,
    ) -> None:
        self.prom = prometheus
        self.window = window
        self.service = service
        self.jaeger = jaeger
        self.budget_for = budget_for or (lambda route: None)
        self.job = f'job="{label_value(service)}"' if service else ""
        self.traces: dict[str, Trace] = {}  # the findings' example traces (their waterfalls)

    def _sel(self, *matchers: str) -> str:
        parts = [m for m in (self.job, *matchers) if m]
        return "{" + ", ".join(parts) + "}" if parts else ""

    def _growth(self, metric: str, labels: str, over: float, *matchers: str) -> str:
        return growth(metric, self._sel(*matchers), promql_duration(over), labels)

    def _instant(self, promql: str, at: float) -> list[Sample]:
        return self.prom.query(promql, at)

    def _range(self, promql: str, w: Window) -> list[RangeSeries]:
        return self.prom.query_range(promql, w.start, w.end, w.step)

    def collect(self) -> ReportData:
        data = ReportData(self.service, self.window.start, self.window.end, self.prom.url, self.jaeger)
        data.routes = self.routes()
        data.findings = self.findings(data.notes)
        data.traces = self.traces
        data.db_operations = self.db_operations()
        data.flames = self.flames(data.findings, data.notes)
        data.client_latency, data.client_requests = self.client_latency()
        return data

    # --- per route: latency percentiles, throughput, errors ------------------------------------

    def routes(self) -> list[RouteReport]:
        w, r = self.window, self.window.rate_range
        total = _vector(
            self._instant(self._growth(f"{HTTP}_count", ROUTE_LABELS, w.seconds), w.end), route_name
        )
        errors = _vector(
            self._instant(
                self._growth(f"{HTTP}_count", ROUTE_LABELS, w.seconds, 'http_response_status_code=~"5.."'),
                w.end,
            ),
            route_name,
        )
        reports = {
            name: RouteReport(name, count, errors.get(name, 0.0), w.seconds, budget=self.budget_for(name))
            for name, count in total.items()
            if count > 0
        }
        buckets = self._growth(f"{HTTP}_bucket", f"le, {ROUTE_LABELS}", w.seconds)
        for label, q in QUANTILES:
            values = _vector(self._instant(f"histogram_quantile({q}, {buckets})", w.end), route_name, 1000)
            for name, value in values.items():
                if name in reports:
                    setattr(reports[name], f"{label}_ms", value)
        step_buckets = self._growth(f"{HTTP}_bucket", f"le, {ROUTE_LABELS}", r)
        for label, q in QUANTILES:
            series = _matrix(self._range(f"histogram_quantile({q}, {step_buckets})", w), route_name, 1000)
            for name, points in series.items():
                if name in reports:
                    reports[name].latency[label] = _fill(points, w)
        count_r = self._growth(f"{HTTP}_count", ROUTE_LABELS, r)
        err_r = self._growth(f"{HTTP}_count", ROUTE_LABELS, r, 'http_response_status_code=~"5.."')
        for name, points in _matrix(self._range(f"({count_r}) / {r:g}", w), route_name).items():
            if name in reports:
                reports[name].throughput = _fill(points, w)
        # Steps with requests and no 5xx have no error series: 0, not a gap.
        ratio = f"(({err_r}) or ({count_r}) * 0) / ({count_r} > 0)"
        for name, points in _matrix(self._range(ratio, w), route_name).items():
            if name in reports:
                reports[name].error_rate = _fill(points, w)
        self._slowest_traces(reports)
        return sorted(reports.values(), key=lambda rr: rr.route)

    def _slowest_traces(self, reports: dict[str, RouteReport]) -> None:
        """Per route, the trace id of the exemplar with the highest latency (Prometheus exemplars)."""
        try:
            rows = self.prom.exemplars(f"{HTTP}_bucket{self._sel()}", self.window.start, self.window.end)
        except Exception:  # exemplar storage is optional: no link then
            return
        best: dict[str, tuple[float, str]] = {}
        for row in rows:
            name = route_name(dict(row.labels))
            for ex in row.exemplars:
                trace_id = ex.labels.get("trace_id")
                value = _finite(ex.value)
                if trace_id and value is not None and value > best.get(name, (-1.0, ""))[0]:
                    best[name] = (value, trace_id)
        for name, (_, trace_id) in best.items():
            if name in reports:
                reports[name].slowest_trace_id = trace_id

    # --- findings and database time ------------------------------------------------------------

    def findings(self, notes: list[str]) -> list[Finding]:
        w = self.window
        times = self._instant(self._growth(FINDINGS_TIME, FINDING_LABELS, w.seconds), w.end)
        counts = self._instant(self._growth(FINDINGS, FINDING_LABELS, w.seconds), w.end)

        def key(m: dict[str, str]) -> str:
            return "\x00".join(m.get(k, "") for k in _FINDING_KEYS)

        count_of = _vector(counts, key)
        time_of = _vector(times, key)
        rows = []
        for k in set(count_of) | set(time_of):
            job, detector, severity, route, fingerprint, statement, expected, call_site = k.split("\x00")
            occurrences, total_ms = count_of.get(k, 0.0), time_of.get(k, 0.0)
            if occurrences > 0 or total_ms > 0:
                rows.append(
                    Finding(
                        job,
                        detector,
                        severity,
                        route,
                        fingerprint,
                        statement,
                        occurrences,
                        total_ms,
                        expected=expected == "true",
                        call_site=call_site,
                    )
                )
        try:
            jaeger = Jaeger(self.jaeger, timeout=self.prom.timeout)
            examples = finding_traces(
                jaeger, {(f.service, f.route) for f in rows}, w.start, w.end, self.traces
            )
        except BackendError as exc:
            notes.append(f"Jaeger: {exc}; findings are shown without links to their traces")
            examples = {}
        out = []
        for f in rows:
            ids = examples.get((f.service, f.detector, f.fingerprint)) or examples.get(
                (f.service, f.detector, f.route)
            )
            out.append(Finding(**{**f.__dict__, "trace_ids": tuple(ids or ())}))
        return sorted(out, key=lambda f: (-f.total_ms, -f.occurrences, f.detector, f.route))

    def flames(self, findings: list[Finding], notes: list[str]) -> list[RouteFlame]:
        """Flame graphs of the routes with latency-budget findings (their profiles, from Jaeger)."""
        routes = {(f.service, f.route) for f in findings if f.detector == "latency_budget"}
        if not routes:
            return []
        try:
            jaeger = Jaeger(self.jaeger, timeout=self.prom.timeout)
            return route_flames(jaeger, routes, self.window.start, self.window.end)
        except BackendError as exc:
            notes.append(f"Jaeger: {exc}; no flame graphs of over-budget routes")
            return []

    def db_operations(self) -> list[DbOperation]:
        w = self.window
        client = ('span_kind="SPAN_KIND_CLIENT"', 'db_system_name!=""')
        labels = "span_name, db_system_name"
        sums = self._instant(self._growth(f"{SPANS}_sum", labels, w.seconds, *client), w.end)
        calls = self._instant(self._growth(f"{SPANS}_count", labels, w.seconds, *client), w.end)

        def key(m: dict[str, str]) -> str:
            return m.get("span_name", "") + "\x00" + m.get("db_system_name", "")

        calls_of = _vector(calls, key)
        out = []
        for k, seconds in _vector(sums, key).items():
            name, system = k.split("\x00")
            if calls_of.get(k, 0.0) > 0:
                out.append(DbOperation(name, system, calls_of[k], seconds * 1000))
        return sorted(out, key=lambda op: -op.total_ms)

    # --- the load generator's view --------------------------------------------------------------

    def client_latency(self) -> tuple[dict[str, Series], float]:
        """Client-side percentiles over time (all requests of the load test), and its request count.

        The load generator is its own service, so no service filter applies.
        """
        w, r = self.window, self.window.rate_range
        saved, self.job = self.job, ""
        try:
            total = _vector(
                self._instant(self._growth(f"{CLIENT}_count", "", w.seconds), w.end), lambda m: "all"
            )
            if total.get("all", 0.0) <= 0:
                return {}, 0.0
            buckets = self._growth(f"{CLIENT}_bucket", "le", r)
            out: dict[str, Series] = {}
            for label, q in QUANTILES:
                rows = self._range(f"histogram_quantile({q}, {buckets})", w)
                series = _matrix(rows, lambda m: "all", 1000)
                out[label] = _fill(series.get("all", []), w)
            return out, total["all"]
        finally:
            self.job = saved
