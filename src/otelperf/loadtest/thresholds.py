"""Load-test thresholds from the budgets: per route p95/p99 and error rate, and a throughput floor.

Pure functions over :class:`RouteStats` (what a load generator measured for one route), so the same
verdicts come out of a Locust run, a test, or any other client. A route is named like a budget:
``"GET /orders/{order_id}"`` (the request method, a space, the server's route template).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from otelperf.budgets import DEFAULT_ROUTE, Budgets

TOTAL = "(all routes)"


@dataclass(frozen=True)
class RouteStats:
    """What the client measured for one route (or ``TOTAL``) during a run."""

    route: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Check:
    """One threshold: ``metric`` of ``route`` measured ``value`` against ``limit``."""

    route: str
    metric: str  # "p95" | "p99" | "error rate" | "throughput" | "requests"
    value: float
    limit: float
    budget_route: str  # the budget entry it came from ("*" = defaults)
    passed: bool

    @property
    def value_text(self) -> str:
        return _fmt(self.metric, self.value)

    @property
    def limit_text(self) -> str:
        op = ">=" if self.metric in ("throughput", "requests") else "<="
        return f"{op} {_fmt(self.metric, self.limit)}"


def _fmt(metric: str, value: float) -> str:
    if metric in ("p95", "p99"):
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if metric == "error rate":
        return f"{value * 100:.2f} %"
    if metric == "throughput":
        return f"{value:.1f} req/s"
    return f"{value:.0f}"


def evaluate(
    routes: Iterable[RouteStats],
    total: RouteStats,
    budgets: Budgets,
    *,
    check_throughput: bool = True,
) -> list[Check]:
    """Every threshold of every route that got traffic, then the service-wide ones.

    A breach is ``value > limit`` (latency, error rate) or ``value < limit`` (throughput): a p95 equal
    to its budget is within it. Throughput: a named route is held to its own ``min_rps`` only when
    its budget sets one; the ``"*"`` floor is the whole service's, so it applies to ``TOTAL``.
    ``check_throughput=False`` for ramping runs, whose average rate says nothing about capacity.
    """
    checks: list[Check] = []

    def at_most(stats: RouteStats, metric: str, value: float, limit: float, budget_route: str) -> None:
        checks.append(Check(stats.route, metric, value, limit, budget_route, value <= limit))

    def at_least(stats: RouteStats, metric: str, value: float, limit: float, budget_route: str) -> None:
        checks.append(Check(stats.route, metric, value, limit, budget_route, value >= limit))

    for stats in sorted(routes, key=lambda s: s.route):
        if stats.requests == 0:
            continue
        budget = budgets.for_route(stats.route)
        at_most(stats, "p95", stats.p95_ms, budget.p95_ms, budget.route)
        if budget.p99_ms is not None:
            at_most(stats, "p99", stats.p99_ms, budget.p99_ms, budget.route)
        at_most(stats, "error rate", stats.error_rate, budget.error_rate, budget.route)
        if check_throughput and budget.route != DEFAULT_ROUTE and budget.min_rps:
            at_least(stats, "throughput", stats.rps, budget.min_rps, budget.route)
    default = budgets.default
    # A run that sent nothing (wrong host, app down) must not pass for lack of data.
    at_least(total, "requests", total.requests, 1, DEFAULT_ROUTE)
    at_most(total, "error rate", total.error_rate, default.error_rate, DEFAULT_ROUTE)
    if check_throughput and default.min_rps:
        at_least(total, "throughput", total.rps, default.min_rps, DEFAULT_ROUTE)
    return checks


def breaches(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]


def format_table(checks: Sequence[Check]) -> str:
    """A plain-text table, one row per threshold, and a last line with the verdict."""
    header = ("route", "threshold", "measured", "budget", "from", "verdict")
    rows = [
        (c.route, c.metric, c.value_text, c.limit_text, c.budget_route, "ok" if c.passed else "BREACHED")
        for c in checks
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = breaches(checks)
    if failed:
        lines.append(f"thresholds: {len(failed)} of {len(checks)} BREACHED")
    else:
        lines.append(f"thresholds: all {len(checks)} passed")
    return "\n".join(lines)
