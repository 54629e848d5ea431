"""Prometheus recording and alerting rules from the budgets.

Metric names are the ones the collector's Prometheus exporter gives otelperf's OTLP metrics
(``http.server.request.duration`` -> ``http_server_request_duration_seconds_*``, see
``otelperf._names``). Series carry ``job`` = service.name and ``instance`` = service.instance.id, so
every rule aggregates ``by (job, ...)``: a restart (a new instance) must not split a route in two.

Severities: ``page`` (someone acts now: fast SLO burn) and ``ticket`` (look at it this week: every
budget breach, slow SLO burn). Alertmanager routes on exactly these two.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from otelperf import _names
from otelperf.budgets import Budgets, RouteBudget

__all__ = ["BURN_RATES", "build_rules", "le_matcher", "prom_name"]

HTTP = "http_server_request_duration_seconds"
DB = "db_client_operation_duration_seconds"
ROUTE_BY = "job, http_route, http_request_method"
# (severity, long window, short window, burn-rate factor): the SRE workbook's multiwindow alerts.
BURN_RATES: tuple[tuple[str, str, str, float], ...] = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "3d", "6h", 1.0),
)
SLO_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
FIVE_XX = 'http_response_status_code=~"5.."'
LE_INF = 'le="+Inf"'
POOL_USED = 'db_client_connection_state="used"'
CACHE_HIT = 'otelperf_cache_result="hit"'
CACHE_LOOKUP = 'otelperf_cache_result=~"hit|miss"'
SLOW_QUERY = 'detector="slow_query"'
NOT_EXPECTED = 'expected!="true"'  # findings marked expected (otelperf.expect, [[expected]]) never alert
GATED = 'detector=~"n_plus_one|slow_query"'  # the findings a new version must not bring
VERSIONED = 'service_version!=""'
NEW_FINDING_HISTORY = "7d"  # how far back a fingerprint counts as known in an earlier version


def prom_name(otel_name: str, unit_suffix: str = "") -> str:
    """``db.client.operation.duration`` + ``seconds`` -> ``db_client_operation_duration_seconds``."""
    return otel_name.replace(".", "_") + (f"_{unit_suffix}" if unit_suffix else "")


assert prom_name(_names.METRIC_HTTP_SERVER_DURATION, "seconds") == HTTP
assert prom_name(_names.METRIC_DB_CLIENT_DURATION, "seconds") == DB


def le_matcher(seconds: float) -> str:
    """The ``le`` matcher of the smallest bucket edge >= ``seconds``; OpenMetrics writes 1 as "1.0"
    while the text format writes "1", so both spellings match."""
    edges = [e for e in _names.DURATION_BUCKETS_S if e >= seconds - 1e-12]
    edge = edges[0] if edges else _names.DURATION_BUCKETS_S[-1]
    text = repr(float(edge))
    if text.endswith(".0"):
        return f'le=~"{text[:-2]}|{text}"'
    return f'le="{text}"'


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _sel(*matchers: str) -> str:
    parts = [m for m in matchers if m]
    return "{" + ",".join(parts) + "}" if parts else ""


def _route_matchers(route: RouteBudget) -> str:
    return f'http_route="{_q(route.template or "")}",http_request_method="{route.method}"'


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


def _ms(ms: float) -> str:
    return f"{ms:g}ms" if ms < 1000 else f"{ms / 1000:g}s"


class _Ctx:
    def __init__(self, budgets: Budgets, jaeger_url: str) -> None:
        self.b = budgets
        self.jaeger = jaeger_url.rstrip("/")
        self.job = f'job="{_q(budgets.service)}"' if budgets.service else ""
        self.for_ = _duration(budgets.alert_for_s)

    def search(
        self, operation: str | None = None, min_ms: float | None = None, route_labels: bool = False
    ) -> str:
        """A Jaeger search URL; ``{{ }}`` parts are filled in by Prometheus when the alert fires."""
        service = urllib.parse.quote(self.b.service) if self.b.service else "{{ $labels.job }}"
        url = f"{self.jaeger}/search?service={service}"
        if operation:
            url += "&operation=" + urllib.parse.quote(operation, safe="")
        elif route_labels:
            url += "&operation={{ $labels.http_request_method }}%20{{ $labels.http_route | urlquery }}"
        if min_ms:
            url += f"&minDuration={_ms(min_ms)}"
        return url + "&lookback=1h&limit=20"

    def alert(  # noqa: PLR0917 - one call per alert reads best positionally
        self,
        name: str,
        expr: str,
        severity: str,
        summary: str,
        description: str,
        jaeger: str,
        labels: dict[str, str] | None = None,
        for_: str | None = None,
    ) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": name, "expr": expr}
        wait = self.for_ if for_ is None else for_
        if wait not in ("0s", "0m"):
            rule["for"] = wait
        rule["labels"] = {"severity": severity, **(labels or {})}
        rule["annotations"] = {
            "summary": summary,
            "description": description,
            "runbook": f"Traces of the slowest/failing requests: {jaeger} . Then `otelperf report` ranks "
            "the detectors' findings (slow queries, N+1, over-budget breakdowns) by the time they cost.",
            "jaeger_url": jaeger,
        }
        return rule


def _recording(c: _Ctx) -> list[dict[str, Any]]:
    j = c.job
    rules: list[dict[str, Any]] = []
    for q in ("50", "95", "99"):
        rules.append(
            {
                "record": f"job_route:{HTTP}:p{q}_5m",
                "expr": f"histogram_quantile(0.{q}, sum by ({ROUTE_BY}, le)"
                f" (rate({HTTP}_bucket{_sel(j)}[5m])))",
            }
        )
    total = f"sum by ({ROUTE_BY}) (rate({HTTP}_count{_sel(j)}[5m]))"
    errors = f"sum by ({ROUTE_BY}) (rate({HTTP}_count{_sel(j, FIVE_XX)}[5m]))"
    rules += [
        {"record": "job_route:http_server_requests:rate5m", "expr": total},
        {"record": "job_route:http_server_errors:rate5m", "expr": errors},
        {
            # `or ... * 0`: a route without a single 5xx has no error series; its ratio is 0, not absent.
            "record": "job_route:http_server_error_ratio:rate5m",
            "expr": "(job_route:http_server_errors:rate5m or job_route:http_server_requests:rate5m * 0)\n"
            "/ job_route:http_server_requests:rate5m",
        },
        {
            "record": "job:http_server_requests:rate5m",
            "expr": "sum by (job) (job_route:http_server_requests:rate5m)",
        },
    ]
    return rules


def _budget_series(c: _Ctx) -> list[dict[str, Any]]:
    """The budgets as series, for dashboards, `otelperf report` and the default rules' `unless`."""
    rules: list[dict[str, Any]] = []
    job = {"job": c.b.service} if c.b.service else {}
    for r in c.b.routes:
        labels = {**job, "http_route": r.template or "*", "http_request_method": r.method or "*"}
        rules.append(
            {
                "record": "otelperf:budget_p95:seconds",
                "expr": f"vector({r.p95_ms / 1000:g})",
                "labels": labels,
            }
        )
        rules.append(
            {
                "record": "otelperf:budget_error_ratio:ratio",
                "expr": f"vector({r.error_rate:g})",
                "labels": labels,
            }
        )
    return rules


def _http_alerts(c: _Ctx) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    p95, p99 = f"job_route:{HTTP}:p95_5m", f"job_route:{HTTP}:p99_5m"
    ratio = "job_route:http_server_error_ratio:rate5m"
    for r in c.b.named_routes:
        sel = _sel(c.job, _route_matchers(r))
        rules.append(
            c.alert(
                "LatencyP95OverBudget",
                f"{p95}{sel} > {r.p95_ms / 1000:g}",
                "ticket",
                f"{r.route}: p95 {{{{ $value | humanizeDuration }}}} over its {_ms(r.p95_ms)} budget",
                f"p95 latency of {r.route} over the last 5 minutes is above the budget of {_ms(r.p95_ms)}.",
                c.search(r.route, r.p95_ms),
                {"budget": "p95", "route": r.route},
            )
        )
        if r.p99_ms is not None:
            rules.append(
                c.alert(
                    "LatencyP99OverBudget",
                    f"{p99}{sel} > {r.p99_ms / 1000:g}",
                    "ticket",
                    f"{r.route}: p99 {{{{ $value | humanizeDuration }}}} over its {_ms(r.p99_ms)} budget",
                    f"p99 latency of {r.route} over the last 5 minutes is above the budget of"
                    f" {_ms(r.p99_ms)}.",
                    c.search(r.route, r.p99_ms),
                    {"budget": "p99", "route": r.route},
                )
            )
        rules.append(
            c.alert(
                "ErrorRateOverBudget",
                f"{ratio}{sel} > {r.error_rate:g}",
                "ticket",
                f"{r.route}: {{{{ $value | humanizePercentage }}}} 5xx, budget {r.error_rate:.2%}",
                f"Share of {r.route} requests answered with a 5xx over the last 5 minutes is above "
                f"its {r.error_rate:.2%} budget.",
                c.search(r.route) + "&tags=%7B%22error%22%3A%22true%22%7D",
                {"budget": "error_rate", "route": r.route},
            )
        )
        if r.min_rps is not None:
            rules.append(
                c.alert(
                    "ThroughputUnderFloor",
                    f"job_route:http_server_requests:rate5m{sel} < {r.min_rps:g}\n"
                    f"and job_route:http_server_requests:rate5m{sel} > 0",
                    "ticket",
                    f"{r.route}: {{{{ $value | humanize }}}} req/s, floor {r.min_rps:g} req/s",
                    f"{r.route} serves traffic, but less than its floor of {r.min_rps:g} req/s.",
                    c.search(r.route),
                    {"budget": "min_rps", "route": r.route},
                )
            )

    # Every route without an entry of its own: the defaults. `unless` drops the named routes.
    d = c.b.default
    named = "otelperf:budget_p95:seconds" + _sel(c.job, 'http_route!="*"')
    unless = f"\nunless on (http_route, http_request_method) {named}"
    sel = _sel(c.job)
    rules.append(
        c.alert(
            "LatencyP95OverBudget",
            f"{p95}{sel} > {d.p95_ms / 1000:g}{unless}",
            "ticket",
            "{{ $labels.http_request_method }} {{ $labels.http_route }}: p95 {{ $value | humanizeDuration }}"
            f" over the default {_ms(d.p95_ms)} budget",
            f"p95 latency over the last 5 minutes is above the default budget of {_ms(d.p95_ms)}.",
            c.search(min_ms=d.p95_ms, route_labels=True),
            {"budget": "p95", "route": "*"},
        )
    )
    if d.p99_ms is not None:
        rules.append(
            c.alert(
                "LatencyP99OverBudget",
                f"{p99}{sel} > {d.p99_ms / 1000:g}{unless}",
                "ticket",
                "{{ $labels.http_request_method }} {{ $labels.http_route }}: p99"
                " {{ $value | humanizeDuration }}"
                f" over the default {_ms(d.p99_ms)} budget",
                f"p99 latency over the last 5 minutes is above the default budget of {_ms(d.p99_ms)}.",
                c.search(min_ms=d.p99_ms, route_labels=True),
                {"budget": "p99", "route": "*"},
            )
        )
    rules.append(
        c.alert(
            "ErrorRateOverBudget",
            f"{ratio}{sel} > {d.error_rate:g}{unless}",
            "ticket",
            "{{ $labels.http_request_method }} {{ $labels.http_route }}:"
            " {{ $value | humanizePercentage }} 5xx,"
            f" default budget {d.error_rate:.2%}",
            f"Share of requests answered with a 5xx is above the default budget of {d.error_rate:.2%}.",
            c.search(route_labels=True) + "&tags=%7B%22error%22%3A%22true%22%7D",
            {"budget": "error_rate", "route": "*"},
        )
    )
    if d.min_rps is not None:
        total = "job:http_server_requests:rate5m" + sel
        rules.append(
            c.alert(
                "ThroughputUnderFloor",
                f"{total} < {d.min_rps:g}\nand {total} > 0",
                "ticket",
                f"{{{{ $labels.job }}}}: {{{{ $value | humanize }}}} req/s, floor {d.min_rps:g} req/s",
                f"The service serves traffic, but less than its floor of {d.min_rps:g} req/s (all routes"
                " together). An idle service is not a breach: the floor is a capacity check.",
                c.search(),
                {"budget": "min_rps", "route": "*"},
            )
        )
    return rules


def _db_recording(c: _Ctx) -> list[dict[str, Any]]:
    j, by = c.job, "job, db_system_name"
    edge = le_matcher(c.b.db_max_query_ms / 1000)
    return [
        {
            "record": f"job:{DB}:avg5m",
            "expr": f"sum by ({by}) (rate({DB}_sum{_sel(j)}[5m]))\n/ sum by ({by})"
            f" (rate({DB}_count{_sel(j)}[5m]))",
        },
        {
            "record": f"job:{DB}:p95_5m",
            "expr": f"histogram_quantile(0.95, sum by ({by}, le) (rate({DB}_bucket{_sel(j)}[5m])))",
        },
        {
            # Queries slower than the max budget (rounded up to a bucket edge: histograms know no
            # finer), counted from the buckets so that no single slow query hides in an average.
            "record": "job:db_client_operations_over_max:increase5m",
            "expr": f"sum by ({by}) (increase({DB}_bucket{_sel(j, LE_INF)}[5m]))\n"
            f"- sum by ({by}) (increase({DB}_bucket{_sel(j, edge)}[5m]))",
        },
        {
            "record": "job:db_client_connection_utilization:ratio",
            "expr": "sum by (job, db_client_connection_pool_name) "
            f"(db_client_connection_count{_sel(j, POOL_USED)})\n"
            f"/ sum by (job, db_client_connection_pool_name) (db_client_connection_max{_sel(j)})",
        },
        {
            "record": "job:otelperf_cache_hit_ratio:ratio5m",
            "expr": "sum by (job, otelperf_cache_name) "
            f"(rate(otelperf_cache_requests_total{_sel(j, CACHE_HIT)}[5m]))\n"
            "/ sum by (job, otelperf_cache_name) "
            f"(rate(otelperf_cache_requests_total{_sel(j, CACHE_LOOKUP)}[5m]))",
        },
    ]


def _new_finding_alert(c: _Ctx) -> dict[str, Any]:
    """An N+1 or slow-query fingerprint that only the running version has (service.version).

    Fires while the version reports it (a series sampled in the last 5 minutes), when the job had
    another version (with findings, or serving requests) in the last NEW_FINDING_HISTORY and no
    other version had this (detector, route, fingerprint). Expected findings are left out.
    """
    j, h = c.job, NEW_FINDING_HISTORY
    gated = f"otelperf_findings_total{_sel(j, GATED, NOT_EXPECTED, VERSIONED)}"
    key = "job, detector, route, fingerprint"
    now = f"max by ({key}, service_version, statement) (last_over_time({gated}[5m]))"
    one_version = f"count by ({key}) (count by ({key}, service_version) (last_over_time({gated}[{h}]))) == 1"
    # The job's versions: from its findings, or from its requests (service_version is on them when
    # the collector turns resource attributes into labels, as this stack's does).
    seen = (
        f"last_over_time(otelperf_findings_total{_sel(j, VERSIONED)}[{h}])"
        f" or last_over_time({HTTP}_count{_sel(j, VERSIONED)}[{h}])"
    )
    versions = f"count by (job) (count by (job, service_version) ({seen})) > 1"
    return c.alert(
        "NewFindingInVersion",
        f"{now}\nand on ({key}) ({one_version})\nand on (job) ({versions})",
        "ticket",
        "{{ $labels.job }} {{ $labels.service_version }}: new {{ $labels.detector }} on "
        "{{ $labels.route }}: {{ $labels.statement }}",
        f"No earlier version of the service had this {{{{ $labels.detector }}}} finding in the last {h} "
        "(fingerprint {{ $labels.fingerprint }}). Fix it, or mark it expected (otelperf.expect(), "
        "[[expected]] in otelperf.toml). `otelperf report` marks it NEW.",
        c.search(operation=None, route_labels=False),
        {"finding": "new"},
        for_="0s",
    )


def _db_alerts(c: _Ctx) -> list[dict[str, Any]]:
    b, j = c.b, c.job
    findings = f"otelperf_findings_total{_sel(j, SLOW_QUERY, NOT_EXPECTED)}"
    slow = f"sum by (job, route, fingerprint, statement) (increase({findings}[5m])) > 0"
    return [
        c.alert(
            "SlowQueries",
            slow,
            "ticket",
            "{{ $labels.job }}: {{ $value | humanize }} slow queries in 5m: {{ $labels.statement }}",
            "The slow_query detector flagged statements over the slow-query threshold "
            "(route {{ $labels.route }}, fingerprint {{ $labels.fingerprint }}).",
            c.search(min_ms=b.db_avg_query_ms),
            {"budget": "db"},
            for_="0s",
        ),
        _new_finding_alert(c),
        c.alert(
            "DBQueryAvgOverBudget",
            f"job:{DB}:avg5m{_sel(j)} > {b.db_avg_query_ms / 1000:g}",
            "ticket",
            f"{{{{ $labels.job }}}} ({{{{ $labels.db_system_name }}}}): average query "
            f"{{{{ $value | humanizeDuration }}}}, budget {_ms(b.db_avg_query_ms)}",
            f"Average database operation time over 5 minutes is above {_ms(b.db_avg_query_ms)}.",
            c.search(min_ms=b.db_avg_query_ms),
            {"budget": "db_avg_query"},
        ),
        c.alert(
            "DBQueryOverMax",
            f"job:db_client_operations_over_max:increase5m{_sel(j)} > 0",
            "ticket",
            f"{{{{ $labels.job }}}}: {{{{ $value | humanize }}}} queries over {_ms(b.db_max_query_ms)} in 5m",
            f"No query should take longer than {_ms(b.db_max_query_ms)}; some did (counted from the "
            "duration histogram's buckets).",
            c.search(min_ms=b.db_max_query_ms),
            {"budget": "db_max_query"},
            for_="0s",
        ),
        c.alert(
            "DBPoolSaturated",
            f"job:db_client_connection_utilization:ratio{_sel(j)} > {b.pool_max_utilization:g}",
            "ticket",
            "{{ $labels.job }} pool {{ $labels.db_client_connection_pool_name }}:"
            " {{ $value | humanizePercentage }}"
            f" of connections in use, budget {b.pool_max_utilization:.0%}",
            "Requests will soon wait for a connection: fewer/faster queries per request, or a larger pool.",
            c.search(),
            {"budget": "pool_max_utilization"},
        ),
        c.alert(
            "CacheHitRatioUnderBudget",
            f"job:otelperf_cache_hit_ratio:ratio5m{_sel(j)} < {b.cache_min_hit_ratio:g}",
            "ticket",
            "{{ $labels.job }} cache {{ $labels.otelperf_cache_name }}: hit ratio"
            " {{ $value | humanizePercentage }}"
            f", budget {b.cache_min_hit_ratio:.0%}",
            "The cache misses more often than its budget allows: check keys, TTLs and invalidation.",
            c.search(),
            {"budget": "cache_min_hit_ratio"},
        ),
    ]


def _slo(c: _Ctx) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    j = c.job
    recording = []
    for w in SLO_WINDOWS:
        errors = f"sum by (job) (rate({HTTP}_count{_sel(j, FIVE_XX)}[{w}]))"
        total = f"sum by (job) (rate({HTTP}_count{_sel(j)}[{w}]))"
        recording.append(
            {
                "record": f"job:slo_errors_per_request:ratio_rate{w}",
                "expr": f"({errors}\nor {total} * 0)\n/ {total}",
            }
        )
    budget = 1.0 - c.b.slo_target
    alerts = []
    for severity, long_w, short_w, factor in BURN_RATES:
        threshold = f"{factor:g} * {budget:.6g}"
        alerts.append(
            c.alert(
                "ErrorBudgetBurn",
                f"job:slo_errors_per_request:ratio_rate{long_w}{_sel(j)} > ({threshold})\n"
                f"and job:slo_errors_per_request:ratio_rate{short_w}{_sel(j)} > ({threshold})",
                severity,
                f"{{{{ $labels.job }}}} burns its error budget {factor:g}x too fast"
                f" ({long_w}/{short_w} windows)",
                f"At this rate the {c.b.slo_window_days}-day error budget of the {c.b.slo_target:.3%} "
                f"availability SLO is gone in {c.b.slo_window_days / factor:.3g} days. Error ratio over "
                f"{long_w}: {{{{ $value | humanizePercentage }}}}.",
                c.search() + "&tags=%7B%22error%22%3A%22true%22%7D",
                {"window": f"{long_w}/{short_w}", "slo": f"{c.b.slo_target:g}"},
                for_="2m" if severity == "page" else "15m",
            )
        )
    return recording, alerts


def build_rules(budgets: Budgets, *, jaeger_url: str = "http://127.0.0.1:16686") -> dict[str, Any]:
    """The rule file (as a dict, ready for YAML): recording groups first, then alerts."""
    c = _Ctx(budgets, jaeger_url)
    slo_recording, slo_alerts = _slo(c)
    return {
        "groups": [
            {"name": "otelperf.budgets", "rules": _budget_series(c)},
            {"name": "otelperf.http.recording", "rules": _recording(c)},
            {"name": "otelperf.db.recording", "rules": _db_recording(c)},
            {"name": "otelperf.slo.recording", "rules": slo_recording},
            {"name": "otelperf.http.alerts", "rules": _http_alerts(c)},
            {"name": "otelperf.db.alerts", "rules": _db_alerts(c)},
            {"name": "otelperf.slo.alerts", "rules": slo_alerts},
        ]
    }
