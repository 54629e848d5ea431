"""Per-route performance baselines, and a CI gate on them (``otelperf baseline record|compare``).

    otelperf baseline record --out baselines/shop.json --runs 3      # load, measure, write
    otelperf baseline compare --baseline baselines/shop.json --runs 3 --tolerance 20%

Each run is a Locust load run (:mod:`otelperf.loadtest`) followed by reading that run's window from
Prometheus and Jaeger (:mod:`.collect`, :func:`measure`); medians over the runs are written or
compared (:mod:`.model`). The baseline also lists every N+1 and slow-query fingerprint of its
runs: compare fails on one it did not have (:func:`new_findings`), as on a rise in queries per
request. ``--window 10m`` reads the last ten minutes instead of running any load.
The command is :mod:`otelperf.cli.baseline`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from otelperf.baseline.collect import (
    Backends,
    gated_findings,
    queries_per_request,
    server_numbers,
    top_fingerprints,
    wait_for_requests,
)
from otelperf.baseline.model import Baseline, compare, new_findings

__all__ = ["Baseline", "Measured", "compare", "measure", "new_findings"]


@dataclass(frozen=True)
class Measured:
    routes: dict[str, dict[str, float]]
    fingerprints: list[dict[str, Any]]
    traces: int
    findings: list[dict[str, str]] = field(default_factory=list)  # N+1 / slow-query fingerprints


def measure(
    backends: Backends,
    service: str,
    start: float,
    end: float,
    *,
    expected_requests: int = 0,
    settle_timeout: float = 60.0,
) -> Measured:
    """The per-route numbers of ``service`` for requests in [start, end] (unix seconds)."""
    if expected_requests:
        numbers = wait_for_requests(backends, service, start, expected_requests, settle_timeout)
    else:
        numbers = server_numbers(backends, service, start, time.time())
    at = time.time()
    qpr, traces = queries_per_request(backends, service, start, end)
    seconds = max(end - start, 1e-9)
    routes: dict[str, dict[str, float]] = {}
    for route, count in numbers.requests.items():
        if count <= 0:
            continue
        values = {
            "requests": count,
            "rps": count / seconds,
            "error_rate": numbers.errors.get(route, 0.0) / count,
        }
        for q, name in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            if route in numbers.quantiles_ms[q]:
                values[name] = numbers.quantiles_ms[q][route]
        if route in qpr:
            values["queries_per_request"] = qpr[route]
        routes[route] = values
    return Measured(
        routes,
        top_fingerprints(backends, service, start, at),
        traces,
        gated_findings(backends, service, start, at),
    )
