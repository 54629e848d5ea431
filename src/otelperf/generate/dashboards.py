"""Grafana dashboards (JSON) and provisioning from the budgets.

Five dashboards, each a plain function of the budgets: RED per route (the budget drawn as a
threshold line, a latency heatmap whose exemplars link to Jaeger), backend (DB, pool, PostgreSQL,
cache), findings, host, and load test (client-side latency beside server-side). Panels query raw
series with ``$__rate_interval`` rather than the recording rules, so they work on any Prometheus
that scrapes the collector, rules loaded or not. Datasources have fixed uids (``otelperf-prometheus``,
``otelperf-jaeger``): the dashboards reference them and provisioning creates them.
"""

from __future__ import annotations

from typing import Any

from otelperf.budgets import Budgets, RouteBudget

__all__ = ["JAEGER_UID", "PROMETHEUS_UID", "build_dashboards", "build_provisioning"]

PROMETHEUS_UID = "otelperf-prometheus"
JAEGER_UID = "otelperf-jaeger"
PROM = {"type": "prometheus", "uid": PROMETHEUS_UID}
HTTP = "http_server_request_duration_seconds"
DB = "db_client_operation_duration_seconds"
LOADTEST = "otelperf_loadtest_request_duration_seconds"
JOB = 'job=~"$job"'
HOST = 'job="otelcol-exporter"'
RI = "$__rate_interval"


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _route_sel(route: RouteBudget) -> str:
    return f'{JOB},http_route="{_q(route.template or "")}",http_request_method="{route.method}"'


def _ms(ms: float) -> str:
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


class _Board:
    """Lays panels out left to right, 24 columns wide, and numbers them."""

    def __init__(self, uid: str, title: str, description: str, variables: list[dict[str, Any]]) -> None:
        self.uid, self.title, self.description, self.variables = uid, title, description, variables
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        kind: str = "timeseries",
        w: int = 12,
        h: int = 8,
        thresholds: list[tuple[float, str]] | None = None,
        description: str = "",
        exemplars: bool = False,
        floor: bool = False,
    ) -> None:
        # A budget is a ceiling (green below, red above) or, with floor=True, a floor (the reverse).
        steps: list[dict[str, Any]] = [{"color": "red" if floor else "green", "value": None}]
        steps += [{"color": color, "value": value} for value, color in thresholds or []]
        custom: dict[str, Any] = {}
        if kind == "timeseries":
            custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
            custom["thresholdsStyle"] = {"mode": "line" if thresholds else "off"}
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": PROM,
            "gridPos": self._place(w, h),
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "custom": custom,
                    "thresholds": {"mode": "absolute", "steps": steps},
                },
                "overrides": [],
            },
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": PROM,
                    "expr": expr,
                    "legendFormat": legend,
                    "exemplar": exemplars,
                    **({"format": "heatmap"} if kind == "heatmap" else {}),
                }
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kind == "heatmap":
            panel["options"] = {
                "calculate": False,
                "yAxis": {"unit": "s"},
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                "exemplars": {"color": "rgba(255,0,255,0.7)"},
                "tooltip": {"show": True, "yHistogram": True},
            }
        if kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
        self.panels.append(panel)

    def json(self, budgets: Budgets) -> dict[str, Any]:
        source = "the budgets file" if budgets.source else "the built-in budgets"
        return {
            "uid": self.uid,
            "title": self.title,
            "description": f"{self.description} Generated by `otelperf generate dashboards` from {source}.",
            "tags": ["otelperf"],
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "graphTooltip": 1,
            "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [
                {
                    "title": "otelperf dashboards",
                    "type": "dashboards",
                    "tags": ["otelperf"],
                    "asDropdown": True,
                }
            ],
            "panels": self.panels,
        }


def _var(name: str, query: str, default: str | None, label: str) -> dict[str, Any]:
    current = {"text": default, "value": default} if default else {"text": "All", "value": "$__all"}
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROM,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": current,
    }


def _job_var(budgets: Budgets) -> dict[str, Any]:
    return _var("job", f"label_values({HTTP}_count, job)", budgets.service, "service")


def _quantile(q: str, sel: str, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({HTTP}_bucket{{{sel}}}[{RI}])))"


def _red(budgets: Budgets) -> dict[str, Any]:
    d = budgets.default
    b = _Board(
        "otelperf-red",
        "otelperf: RED per route",
        "Rate, errors and duration per route against the budgets (red line = budget).",
        [_job_var(budgets)],
    )
    by = "http_request_method, http_route"
    legend = "{{http_request_method}} {{http_route}}"
    errors_sel = f'{JOB},http_response_status_code=~"5.."'
    by_total = f"sum by ({by}) (rate({HTTP}_count{{{JOB}}}[{RI}]))"
    b.row("Service")
    b.add(
        "Requests per second",
        [(f"sum(rate({HTTP}_count{{{JOB}}}[{RI}]))", "req/s")],
        unit="reqps",
        kind="stat",
        w=6,
        h=5,
        thresholds=[],
        description=f"Floor: {d.min_rps:g} req/s" if d.min_rps else "",
    )
    b.add(
        "Error ratio (5xx)",
        [
            (
                f"(sum(rate({HTTP}_count{{{errors_sel}}}[{RI}])) or vector(0)) /"
                f" sum(rate({HTTP}_count{{{JOB}}}[{RI}]))",
                "5xx",
            )
        ],
        unit="percentunit",
        kind="stat",
        w=6,
        h=5,
        thresholds=[(d.error_rate, "red")],
    )
    b.add(
        "p95, all routes",
        [(_quantile("0.95", JOB), "p95")],
        unit="s",
        kind="stat",
        w=6,
        h=5,
        thresholds=[(d.p95_ms / 1000, "red")],
    )
    b.add(
        "p99, all routes",
        [(_quantile("0.99", JOB), "p99")],
        unit="s",
        kind="stat",
        w=6,
        h=5,
        thresholds=[(d.p99_ms / 1000, "red")] if d.p99_ms else [],
    )
    b.add(
        "Requests per second by route",
        [(f"sum by ({by}) (rate({HTTP}_count{{{JOB}}}[{RI}]))", legend)],
        unit="reqps",
    )
    b.add(
        "Error ratio by route (5xx)",
        [
            (
                # `or ... * 0`: a route without a single 5xx shows 0, not a gap.
                f"(sum by ({by}) (rate({HTTP}_count{{{errors_sel}}}[{RI}]))\n or {by_total} *"
                f" 0)\n/ {by_total}",
                legend,
            )
        ],
        unit="percentunit",
        thresholds=[(d.error_rate, "red")],
        description=f"Default error budget {d.error_rate:.2%}.",
    )
    b.add(
        "p95 by route",
        [(_quantile("0.95", JOB, by), legend)],
        unit="s",
        thresholds=[(d.p95_ms / 1000, "red")],
        description=f"Default p95 budget {_ms(d.p95_ms)}; routes with their own budget have a row below.",
    )
    b.add(
        "Latency heatmap (exemplars link to Jaeger)",
        [(f"sum by (le) (increase({HTTP}_bucket{{{JOB}}}[{RI}]))", "{{le}}")],
        kind="heatmap",
        exemplars=True,
        description="Each dot is an exemplar: a real request with its trace_id; "
        "click it to open the trace in Jaeger.",
    )
    for r in budgets.named_routes:
        sel = _route_sel(r)
        b.row(f"{r.route}  (p95 budget {_ms(r.p95_ms)}" + (f", p99 {_ms(r.p99_ms)})" if r.p99_ms else ")"))
        steps = [(r.p95_ms / 1000, "orange")] + ([(r.p99_ms / 1000, "red")] if r.p99_ms else [])
        b.add(
            f"{r.route}: latency",
            [(_quantile(q, sel), f"p{q[2:]}") for q in ("0.5", "0.95", "0.99")],
            unit="s",
            w=8,
            thresholds=steps,
            description=f"p95 budget {_ms(r.p95_ms)}" + (f", p99 budget {_ms(r.p99_ms)}" if r.p99_ms else ""),
        )
        b.add(
            f"{r.route}: requests per second",
            [(f"sum(rate({HTTP}_count{{{sel}}}[{RI}]))", "req/s")],
            unit="reqps",
            w=8,
            thresholds=[],
            description=f"Floor {r.min_rps:g} req/s" if r.min_rps else "No throughput floor.",
        )
        b.add(
            f"{r.route}: error ratio",
            [
                (
                    f'(sum(rate({HTTP}_count{{{sel},http_response_status_code=~"5.."}}[{RI}])) or vector(0))'
                    f" / sum(rate({HTTP}_count{{{sel}}}[{RI}]))",
                    "5xx",
                )
            ],
            unit="percentunit",
            w=8,
            thresholds=[(r.error_rate, "red")],
        )
    return b.json(budgets)


def _backend(budgets: Budgets) -> dict[str, Any]:
    bg = budgets
    b = _Board(
        "otelperf-backend",
        "otelperf: database and cache",
        "Query time, slow queries, pool use, PostgreSQL and Redis receiver stats, cache hit ratio.",
        [_job_var(budgets)],
    )
    b.row("Database (client side)")
    b.add(
        "Average query time",
        [
            (
                f"sum by (db_system_name) (rate({DB}_sum{{{JOB}}}[{RI}])) / sum by"
                f" (db_system_name) (rate({DB}_count{{{JOB}}}[{RI}]))",
                "{{db_system_name}}",
            )
        ],
        unit="s",
        w=8,
        thresholds=[(bg.db_avg_query_ms / 1000, "red")],
        description=f"Budget: average query under {_ms(bg.db_avg_query_ms)}.",
    )
    b.add(
        "p95 query time by operation",
        [
            (
                "histogram_quantile(0.95, sum by (db_operation_name, le)"
                f" (rate({DB}_bucket{{{JOB}}}[{RI}])))",
                "{{db_operation_name}}",
            )
        ],
        unit="s",
        w=8,
        thresholds=[(bg.db_max_query_ms / 1000, "red")],
        description=f"Budget: no query over {_ms(bg.db_max_query_ms)}.",
        exemplars=True,
    )
    b.add(
        "Slow queries (slow_query findings)",
        [
            (
                "sum by (statement)"
                f' (increase(otelperf_findings_total{{{JOB},detector="slow_query"}}[{RI}]))',
                "{{statement}}",
            )
        ],
        w=8,
    )
    b.add(
        "Connection pool use",
        [
            (
                "sum by (job, db_client_connection_pool_name)"
                f' (db_client_connection_count{{{JOB},db_client_connection_state="used"}})'
                f" / sum by (job, db_client_connection_pool_name) (db_client_connection_max{{{JOB}}})",
                "{{job}} {{db_client_connection_pool_name}}",
            )
        ],
        unit="percentunit",
        thresholds=[(bg.pool_max_utilization, "red")],
        description=f"Budget: under {bg.pool_max_utilization:.0%} of the pool's connections in use.",
    )
    b.add(
        "Queries per second by operation",
        [(f"sum by (db_operation_name) (rate({DB}_count{{{JOB}}}[{RI}]))", "{{db_operation_name}}")],
        unit="ops",
    )
    b.row("PostgreSQL (collector postgresql receiver)")
    b.add(
        "Backends",
        [("sum by (postgresql_database_name) (postgresql_backends)", "{{postgresql_database_name}}")],
        w=8,
    )
    b.add(
        "Commits and rollbacks per second",
        [
            (
                f"sum by (postgresql_database_name) (rate(postgresql_commits_total[{RI}]))",
                "commits {{postgresql_database_name}}",
            ),
            (
                f"sum by (postgresql_database_name) (rate(postgresql_rollbacks_total[{RI}]))",
                "rollbacks {{postgresql_database_name}}",
            ),
        ],
        unit="ops",
        w=8,
    )
    b.add(
        "Database size",
        [("sum by (postgresql_database_name) (postgresql_db_size_bytes)", "{{postgresql_database_name}}")],
        unit="bytes",
        w=8,
    )
    b.add(
        "Blocks read per second",
        [(f"sum by (source) (rate(postgresql_blocks_read_total[{RI}]))", "{{source}}")],
        unit="ops",
    )
    b.add(
        "Index scans per second",
        [(f"sum(rate(postgresql_index_scans_total[{RI}]))", "index scans")],
        unit="ops",
    )
    b.row("Cache")
    b.add(
        "Cache hit ratio",
        [
            (
                "sum by (otelperf_cache_name)"
                f' (rate(otelperf_cache_requests_total{{{JOB},otelperf_cache_result="hit"}}[{RI}]))'
                " / sum by (otelperf_cache_name)"
                f' (rate(otelperf_cache_requests_total{{{JOB},otelperf_cache_result=~"hit|miss"}}[{RI}]))',
                "{{otelperf_cache_name}}",
            )
        ],
        unit="percentunit",
        thresholds=[(bg.cache_min_hit_ratio, "green")],
        floor=True,
        description=f"Budget: hit ratio over {bg.cache_min_hit_ratio:.0%} (below the line is a breach).",
    )
    b.add(
        "Redis keyspace hit ratio",
        [
            (
                f"sum(rate(redis_keyspace_hits_total[{RI}])) /"
                f" (sum(rate(redis_keyspace_hits_total[{RI}]))"
                f" + sum(rate(redis_keyspace_misses_total[{RI}])))",
                "redis",
            )
        ],
        unit="percentunit",
        thresholds=[(bg.cache_min_hit_ratio, "green")],
        floor=True,
    )
    b.add(
        "Redis commands per second",
        [(f"sum(rate(redis_commands_processed_total[{RI}]))", "commands")],
        unit="ops",
    )
    b.add("Redis memory", [("sum(redis_memory_used_bytes)", "used")], unit="bytes")
    return b.json(budgets)


def _findings(budgets: Budgets) -> dict[str, Any]:
    b = _Board(
        "otelperf-findings", "otelperf: findings", "What the in-process detectors found.", [_job_var(budgets)]
    )
    b.row("Findings")
    b.add(
        "Findings by detector",
        [(f"sum by (detector) (increase(otelperf_findings_total{{{JOB}}}[{RI}]))", "{{detector}}")],
    )
    b.add(
        "Time the findings account for, by detector",
        [
            (
                f"sum by (detector) (rate(otelperf_findings_time_milliseconds_total{{{JOB}}}[{RI}])) / 1000",
                "{{detector}}",
            )
        ],
        unit="s",
        description="Seconds of request time per second that each detector's findings explain.",
    )
    b.add(
        "Findings by route and detector",
        [
            (
                f"sum by (route, detector) (increase(otelperf_findings_total{{{JOB}}}[{RI}]))",
                "{{detector}} {{route}}",
            )
        ],
    )
    b.add(
        "Latency-budget breaches by route and component",
        [
            (
                f"sum by (route, budget) (increase(otelperf_budget_breaches_total{{{JOB}}}[{RI}]))",
                "{{route}} ({{budget}})",
            )
        ],
    )
    b.add(
        "Top findings (last hour)",
        [
            (
                "topk(20, sum by (detector, route, statement)"
                f" (increase(otelperf_findings_total{{{JOB}}}[1h])))",
                "{{detector}} {{route}} {{statement}}",
            )
        ],
        kind="bargauge",
        w=24,
    )
    return b.json(budgets)


def _host(budgets: Budgets) -> dict[str, Any]:
    b = _Board(
        "otelperf-host", "otelperf: host", "CPU, memory, disk and network (collector hostmetrics).", []
    )
    b.row("Host")
    b.add(
        "CPU busy",
        [
            (
                f'sum by (state) (rate(system_cpu_time_seconds_total{{{HOST},state!="idle"}}[{RI}]))'
                f" / scalar(count(count by (cpu) (system_cpu_time_seconds_total{{{HOST}}})))",
                "{{state}}",
            ),
        ],
        unit="percentunit",
    )
    b.add("Load average", [(f"system_cpu_load_average_{m}{{{HOST}}}", m) for m in ("1m", "5m", "15m")])
    b.add("Memory", [(f"sum by (state) (system_memory_usage_bytes{{{HOST}}})", "{{state}}")], unit="bytes")
    b.add(
        "Filesystem used",
        [(f'sum by (mountpoint) (system_filesystem_usage_bytes{{{HOST},state="used"}})', "{{mountpoint}}")],
        unit="bytes",
    )
    b.add(
        "Disk I/O",
        [(f"sum by (direction) (rate(system_disk_io_bytes_total{{{HOST}}}[{RI}]))", "{{direction}}")],
        unit="Bps",
    )
    b.add(
        "Disk operations",
        [(f"sum by (direction) (rate(system_disk_operations_total{{{HOST}}}[{RI}]))", "{{direction}}")],
        unit="iops",
    )
    b.add(
        "Network I/O",
        [(f"sum by (direction) (rate(system_network_io_bytes_total{{{HOST}}}[{RI}]))", "{{direction}}")],
        unit="Bps",
    )
    b.add(
        "Network errors and drops",
        [
            (
                f"sum by (direction) (rate(system_network_errors_total{{{HOST}}}[{RI}]))",
                "errors {{direction}}",
            ),
            (
                f"sum by (direction) (rate(system_network_dropped_total{{{HOST}}}[{RI}]))",
                "dropped {{direction}}",
            ),
        ],
        unit="pps",
    )
    return b.json(budgets)


def _loadtest(budgets: Budgets) -> dict[str, Any]:
    scenario = _var("scenario", f"label_values({LOADTEST}_count, scenario)", None, "scenario")
    b = _Board(
        "otelperf-loadtest",
        "otelperf: load test, client vs server",
        "Latency seen by the load generator beside the server's own, per route.",
        [_job_var(budgets), scenario],
    )
    sc = 'scenario=~"$scenario"'
    by = "http_request_method, http_route"
    d = budgets.default
    b.row("Client side (Locust) vs server side")
    b.add(
        "p95 by route: client",
        [
            (
                f"histogram_quantile(0.95, sum by ({by}, le) (rate({LOADTEST}_bucket{{{sc}}}[{RI}])))",
                "client {{http_request_method}} {{http_route}}",
            ),
        ],
        unit="s",
        thresholds=[(d.p95_ms / 1000, "red")],
    )
    b.add(
        "p95 by route: server",
        [(_quantile("0.95", JOB, by), "server {{http_request_method}} {{http_route}}")],
        unit="s",
        thresholds=[(d.p95_ms / 1000, "red")],
    )
    b.add(
        "Client minus server p95 (network, queueing, client overhead)",
        [
            (
                f"histogram_quantile(0.95, sum by ({by}, le) (rate({LOADTEST}_bucket{{{sc}}}[{RI}])))"
                f" - on ({by}) {_quantile('0.95', JOB, by)}",
                "{{http_request_method}} {{http_route}}",
            ),
        ],
        unit="s",
    )
    b.add(
        "Requests per second: client by scenario, server",
        [
            (f"sum by (scenario) (rate({LOADTEST}_count{{{sc}}}[{RI}]))", "client {{scenario}}"),
            (f"sum(rate({HTTP}_count{{{JOB}}}[{RI}]))", "server"),
        ],
        unit="reqps",
    )
    for r in budgets.named_routes:
        route = f'http_route="{_q(r.template or "")}",http_request_method="{r.method}"'
        b.add(
            f"{r.route}: p95 client vs server",
            [
                (
                    f"histogram_quantile(0.95, sum by (le) (rate({LOADTEST}_bucket{{{sc},{route}}}[{RI}])))",
                    "client",
                ),
                (_quantile("0.95", _route_sel(r)), "server"),
            ],
            unit="s",
            w=8,
            thresholds=[(r.p95_ms / 1000, "red")],
        )
    return b.json(budgets)


def build_dashboards(budgets: Budgets) -> dict[str, dict[str, Any]]:
    """``{file stem: dashboard JSON}``."""
    return {
        "otelperf-red": _red(budgets),
        "otelperf-backend": _backend(budgets),
        "otelperf-findings": _findings(budgets),
        "otelperf-host": _host(budgets),
        "otelperf-loadtest": _loadtest(budgets),
    }


def build_provisioning() -> dict[str, dict[str, Any]]:
    """Grafana provisioning files: the two datasources (compose service names) and the dashboards."""
    return {
        "datasources/otelperf.yml": {
            "apiVersion": 1,
            "datasources": [
                {
                    "name": "Prometheus (otelperf)",
                    "uid": PROMETHEUS_UID,
                    "type": "prometheus",
                    "access": "proxy",
                    "url": "http://prometheus:9090",
                    "isDefault": True,
                    "jsonData": {
                        "timeInterval": "5s",
                        # An exemplar's trace_id label opens that trace in the Jaeger datasource.
                        "exemplarTraceIdDestinations": [{"name": "trace_id", "datasourceUid": JAEGER_UID}],
                    },
                },
                {
                    "name": "Jaeger (otelperf)",
                    "uid": JAEGER_UID,
                    "type": "jaeger",
                    "access": "proxy",
                    "url": "http://jaeger:16686",
                },
            ],
        },
        "dashboards/otelperf.yml": {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "otelperf",
                    "folder": "otelperf",
                    "type": "file",
                    "disableDeletion": False,
                    "allowUiUpdates": True,
                    "options": {"path": "/var/lib/grafana/dashboards"},
                }
            ],
        },
    }
