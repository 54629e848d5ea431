"""Performance budgets: one file, read by the detectors, the load tests, the rules and the dashboards.

The file is ``otelperf.toml`` (or the ``[tool.otelperf]`` table of ``pyproject.toml``)::

    service = "shop"                      # Prometheus job / service.name the rules select

    [defaults]                            # every route without its own entry ("*")
    p95 = "500ms"                         # durations: "250ms", "1.5s", "2m", or a number of ms
    p99 = "1s"                            # optional
    error_rate = "1%"                     # "1%" or a fraction (0.01)
    min_rps = 100                         # throughput floor of the whole service, req/s; 0 = none

    [routes."GET /orders/{order_id}"]     # "METHOD /route-template", as in the span name
    p95 = "200ms"                         # unset keys inherit [defaults] (except min_rps)
    p99 = "400ms"
    min_rps = 5                           # this route's own floor (never inherited)

    [db]
    avg_query = "100ms"
    max_query = "1s"
    pool_max_utilization = "80%"

    [cache]
    min_hit_ratio = "50%"

    [slo]
    target = "99.9%"                      # availability: share of requests answered without a 5xx
    window = "28d"

    [alerts]
    for = "5m"                            # how long a breach must last before its alert fires

    [[expected]]                          # a known, accepted finding (docs/detectors.md)
    detector = "n_plus_one"
    route = "GET /admin/orders"           # and/or fingerprint = "..."
    reason = "admin page, 20 rows at most"

Every problem is a :class:`BudgetError` whose message starts ``<file>:<line>: <key>:`` and says
what is accepted; a misspelt key gets a did-you-mean. ``otelperf budgets check`` prints it.

Modules: :mod:`~otelperf.budgets.model` (the types), :mod:`~otelperf.budgets.load` (reading and
checking the file); the command is :mod:`otelperf.cli.budgets`.
"""

from __future__ import annotations

from otelperf.budgets.load import FILE_NAME as FILE_NAME
from otelperf.budgets.load import find_budgets_file, load_budgets, parse_budgets
from otelperf.budgets.model import DEFAULT_ROUTE, BudgetError, Budgets, ExpectedFinding, RouteBudget
from otelperf.budgets.model import DEFAULT_ROUTE_BUDGET as DEFAULT_ROUTE_BUDGET
from otelperf.budgets.model import HTTP_METHODS as HTTP_METHODS

__all__ = [
    "DEFAULT_ROUTE",
    "BudgetError",
    "Budgets",
    "ExpectedFinding",
    "RouteBudget",
    "find_budgets_file",
    "load_budgets",
    "parse_budgets",
]
