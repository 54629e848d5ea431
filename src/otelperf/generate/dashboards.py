"""Grafana dashboards (JSON) and provisioning from the budgets.

Five dashboards, each a plain function of the budgets: RED per route (the budget drawn as a
threshold line, a latency heatmap whose exemplars link to Jaeger), backend (DB, pool, PostgreSQL,
cache), findings, host, and load test (client-side latency beside server-side). Panels query raw
series with ``$__rate_interval`` rather than the recording rules, so they work on any Prometheus
that scrapes the collector, rules loaded or not. Datasources have fixed uids (``otelperf-prometheus``,
``otelperf-jaeger``): the dashboards reference them and provisioning creates them.

The building blocks (layout, panel JSON, variables, datasources, shared PromQL) are in
:mod:`otelperf.generate.panels`; this module is what each dashboard shows.
"""

from __future__ import annotations

from typing import Any

from otelperf.budgets import Budgets
from otelperf.generate.panels import (
    DB,
    HOST,
    HTTP,
    JAEGER_UID,
    JOB,
    LOADTEST,
    PROMETHEUS_UID,
    RI,
    Board,
    build_provisioning,
    escape_label,
    job_var,
    ms_text,
    quantile,
    route_selector,
    variable,
)

__all__ = ["JAEGER_UID", "PROMETHEUS_UID", "build_dashboards", "build_provisioning"]


def _red(budgets: Budgets) -> dict[str, Any]:
    d = budgets.default
    b = Board(
        "otelperf-red",
        "otelperf: RED per route",
        "Rate, errors and duration per route against the budgets (red line = budget).",
        [job_var(budgets)],
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
        [(quantile("0.95", JOB), "p95")],
        unit="s",
        kind="stat",
        w=6,
        h=5,
        thresholds=[(d.p95_ms / 1000, "red")],
    )
    b.add(
        "p99, all routes",
        [(quantile("0.99", JOB), "p99")],
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
        [(quantile("0.95", JOB, by), legend)],
        unit="s",
        thresholds=[(d.p95_ms / 1000, "red")],
        description=f"Default p95 budget {ms_text(d.p95_ms)}; routes with their own budget have a row below.",
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
        sel = route_selector(r)
        b.row(
            f"{r.route}  (p95 budget {ms_text(r.p95_ms)}"
            + (f", p99 {ms_text(r.p99_ms)})" if r.p99_ms else ")")
        )
        steps = [(r.p95_ms / 1000, "orange")] + ([(r.p99_ms / 1000, "red")] if r.p99_ms else [])
        b.add(
            f"{r.route}: latency",
            [(quantile(q, sel), f"p{q[2:]}") for q in ("0.5", "0.95", "0.99")],
            unit="s",
            w=8,
            thresholds=steps,
            description=f"p95 budget {ms_text(r.p95_ms)}"
            + (f", p99 budget {ms_text(r.p99_ms)}" if r.p99_ms else ""),
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
    b = Board(
        "otelperf-backend",
        "otelperf: database and cache",
        "Query time, slow queries, pool use, PostgreSQL and Redis receiver stats, cache hit ratio.",
        [job_var(budgets)],
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
        description=f"Budget: average query under {ms_text(bg.db_avg_query_ms)}.",
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
        description=f"Budget: no query over {ms_text(bg.db_max_query_ms)}.",
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
    b = Board(
        "otelperf-findings", "otelperf: findings", "What the in-process detectors found.", [job_var(budgets)]
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
    b = Board("otelperf-host", "otelperf: host", "CPU, memory, disk and network (collector hostmetrics).", [])
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
    scenario = variable("scenario", f"label_values({LOADTEST}_count, scenario)", None, "scenario")
    b = Board(
        "otelperf-loadtest",
        "otelperf: load test, client vs server",
        "Latency seen by the load generator beside the server's own, per route.",
        [job_var(budgets), scenario],
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
        [(quantile("0.95", JOB, by), "server {{http_request_method}} {{http_route}}")],
        unit="s",
        thresholds=[(d.p95_ms / 1000, "red")],
    )
    b.add(
        "Client minus server p95 (network, queueing, client overhead)",
        [
            (
                f"histogram_quantile(0.95, sum by ({by}, le) (rate({LOADTEST}_bucket{{{sc}}}[{RI}])))"
                f" - on ({by}) {quantile('0.95', JOB, by)}",
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
        route = f'http_route="{escape_label(r.template or "")}",http_request_method="{r.method}"'
        b.add(
            f"{r.route}: p95 client vs server",
            [
                (
                    f"histogram_quantile(0.95, sum by (le) (rate({LOADTEST}_bucket{{{sc},{route}}}[{RI}])))",
                    "client",
                ),
                (quantile("0.95", route_selector(r)), "server"),
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
