"""A Locust plugin: budgets as thresholds, client-side latency to Prometheus, a progress line.

Import it from a locustfile (``import otelperf.loadtest.locust_plugin``); Locust plugins register
on ``locust.events`` at import. Name each request by its route template so client and server
series line up: ``self.client.get(f"/orders/{id}", name="/orders/{order_id}")``; the route is then
``"GET /orders/{order_id}"``, the budget key and the server's ``http.request.method`` + ``http.route``.

What it adds to ``locust``:

- every request is recorded in the OpenTelemetry histogram ``otelperf.loadtest.request.duration``
  (attributes ``http.route``, ``http.request.method``, ``http.response.status_code``, ``scenario``)
  sent over OTLP/HTTP to the collector, so Prometheus has
  ``otelperf_loadtest_request_duration_seconds_bucket`` next to the server's own histograms;
- at the end, per route p95/p99/error rate (and throughput floors) are checked against the budgets
  (``--budgets FILE`` or the ``otelperf.toml`` found from the working directory), printed as a
  table, and the exit code is 1 when one is breached, 0 otherwise (the budget's error rate decides,
  not Locust's "any failure is exit 1");
- ``--otelperf-summary FILE`` writes the run's per-route stats and verdicts as JSON.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
import uuid
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import gevent
from locust import events as _locust_events
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import StatsEntry

from otelperf import _names
from otelperf.budgets import BudgetError, Budgets, load_budgets
from otelperf.loadtest.thresholds import TOTAL, RouteStats, breaches, evaluate, format_table

events: Any = _locust_events  # Locust's EventHook.add_listener is untyped
METRIC_NAME = _names.METRIC_LOADTEST_DURATION
SCENARIO_ATTRIBUTE = _names.LOADTEST_SCENARIO
DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"


class _State:
    budgets: Budgets | None = None
    scenario: str = ""
    histogram: Any = None
    provider: Any = None
    started: float = 0.0
    progress: Any = None


_state = _State()


def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("otelperf")
    group.add_argument(
        "--budgets",
        default=os.environ.get("OTELPERF_BUDGETS"),
        help="budgets file (default: otelperf.toml or [tool.otelperf] found from the working directory)",
    )
    group.add_argument("--scenario-name", default="", help="`scenario` attribute (default: file name)")
    group.add_argument(
        "--otlp-endpoint",
        default=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_OTLP_ENDPOINT),
        help="OTLP/HTTP endpoint of the collector for the client-side histogram",
    )
    group.add_argument("--no-otlp", action="store_true", default=False, help="do not export client metrics")
    group.add_argument(
        "--no-throughput-check", action="store_true", default=False, help="skip the throughput floors"
    )
    group.add_argument("--otelperf-summary", default="", help="write stats and verdicts (JSON) here")
    group.add_argument("--progress-interval", type=float, default=2.0, help="seconds between progress lines")


def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    try:
        _state.budgets = load_budgets(getattr(options, "budgets", None) or None)
    except BudgetError as exc:
        sys.stderr.write(f"otelperf: cannot read the budgets: {exc}\n")
        sys.exit(2)
    _state.scenario = getattr(options, "scenario_name", "") or Path(environment.locustfile or "locust").stem
    if not getattr(options, "no_otlp", False):
        _start_metrics(getattr(options, "otlp_endpoint", DEFAULT_OTLP_ENDPOINT))


def _start_metrics(endpoint: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics", timeout=5),
        export_interval_millis=2000,  # dashboards follow the run while it runs
    )
    # One instance id per run: each run is its own series (Prometheus `instance`), as each app process is.
    resource = Resource.create({"service.name": "otelperf-loadtest", "service.instance.id": uuid.uuid4().hex})
    _state.provider = MeterProvider(metric_readers=[reader], resource=resource)
    meter = _state.provider.get_meter(_names.INSTRUMENTATION_SCOPE)
    _state.histogram = meter.create_histogram(
        METRIC_NAME,
        unit="s",
        description="Request duration as the load generator saw it",
        explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
    )


@lru_cache(maxsize=4096)  # bounded: routes x methods x status codes
def _attributes(method: str, route: str, status: int, scenario: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        _names.HTTP_ROUTE: route,
        _names.HTTP_REQUEST_METHOD: method,
        SCENARIO_ATTRIBUTE: scenario,
    }
    if status:  # 0: no response at all (connection refused, timeout)
        attributes[_names.HTTP_RESPONSE_STATUS_CODE] = status
    return attributes


def _on_request(request_type: str, name: str, response_time: float, response: Any = None, **_: Any) -> None:
    if _state.histogram is None:
        return
    status = int(getattr(response, "status_code", 0) or 0)
    _state.histogram.record(response_time / 1000, _attributes(request_type, name, status, _state.scenario))


def _on_test_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    _state.started = time.monotonic()
    interval = float(getattr(environment.parsed_options, "progress_interval", 2.0) or 0)
    if interval > 0 and _state.progress is None:
        _state.progress = gevent.spawn(_progress, environment, interval)


def _progress(environment: Environment, interval: float) -> None:
    while True:
        gevent.sleep(interval)
        total = environment.stats.total
        runner = environment.runner
        p95 = total.get_current_response_time_percentile(0.95) or 0
        print(
            f"[loadtest {_state.scenario}] {time.monotonic() - _state.started:5.0f} s"
            f"  users {runner.user_count if runner else 0:3d}"
            f"  requests {total.num_requests:6d}  failures {total.num_failures:4d}"
            f"  {total.current_rps:6.1f} req/s  p95 {p95:.0f} ms",
            flush=True,
        )


def route_stats(entry: StatsEntry, route: str | None = None) -> RouteStats:
    return RouteStats(
        route=route or f"{entry.method} {entry.name}",
        requests=entry.num_requests,
        failures=entry.num_failures,
        p50_ms=float(entry.get_response_time_percentile(0.5) or 0),
        p95_ms=float(entry.get_response_time_percentile(0.95) or 0),
        p99_ms=float(entry.get_response_time_percentile(0.99) or 0),
        rps=float(entry.total_rps),
    )


def _on_quitting(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or _state.budgets is None:
        return
    if _state.progress is not None:
        _state.progress.kill(block=False)
    options = environment.parsed_options
    routes = [route_stats(e) for e in environment.stats.entries.values()]
    total = route_stats(environment.stats.total, TOTAL)
    ramping = environment.shape_class is not None
    checks = evaluate(
        routes,
        total,
        _state.budgets,
        check_throughput=not (ramping or getattr(options, "no_throughput_check", False)),
    )
    failed = breaches(checks)
    environment.process_exit_code = 1 if failed else 0
    summary_path = getattr(options, "otelperf_summary", "")
    if summary_path:
        document = {
            "scenario": _state.scenario,
            "budgets": _state.budgets.source,
            "routes": [asdict(r) for r in routes],
            "total": asdict(total),
            "checks": [asdict(c) for c in checks],
            "passed": not failed,
        }
        Path(summary_path).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    source = _state.budgets.source or "built-in defaults"
    table = f"\nBudget thresholds ({source}):\n{format_table(checks)}"
    # Printed at exit, after Locust's own summary tables, so the verdict is the last thing on screen.
    atexit.register(print, table, flush=True)
    if _state.provider is not None:
        _state.provider.shutdown()  # exports the last points
        _state.provider = _state.histogram = None


# Registered at import, as Locust plugins do.
events.init_command_line_parser.add_listener(_add_arguments)
events.init.add_listener(_on_init)
events.request.add_listener(_on_request)
events.test_start.add_listener(_on_test_start)
events.quitting.add_listener(_on_quitting)
