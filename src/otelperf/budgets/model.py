"""The budget types: :class:`Budgets` of a service, one :class:`RouteBudget` per route."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_ROUTE",
    "DEFAULT_ROUTE_BUDGET",
    "HTTP_METHODS",
    "BudgetError",
    "Budgets",
    "ExpectedFinding",
    "RouteBudget",
    "normalize_route",
]

DEFAULT_ROUTE = "*"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


class BudgetError(ValueError):
    """A budgets file otelperf cannot use: ``<file>:<line>: <key>: what is wrong (accepted: ...)``."""

    def __init__(self, message: str, *, file: str = "", line: int = 0, key: str = "") -> None:
        super().__init__(message)
        self.file, self.line, self.key = file, line, key


@dataclass(frozen=True)
class RouteBudget:
    """The budget of one route (``"GET /orders/{order_id}"``) or of every other route (``"*"``).

    ``min_rps`` of ``"*"`` is the floor of the whole service's throughput (all routes together, default
    100 req/s); a named route has a floor only when the file gives it one.
    """

    route: str
    p95_ms: float = 500.0
    p99_ms: float | None = None
    error_rate: float = 0.01
    min_rps: float | None = None

    @property
    def method(self) -> str | None:
        return None if self.route == DEFAULT_ROUTE else self.route.split(" ", 1)[0]

    @property
    def template(self) -> str | None:
        return None if self.route == DEFAULT_ROUTE else self.route.split(" ", 1)[1]


@dataclass(frozen=True)
class ExpectedFinding:
    """An ``[[expected]]`` entry: findings of ``detector`` on ``route`` and/or with ``fingerprint``
    are known and accepted (``reason`` says why). Counted apart; they neither alert nor fail tests."""

    detector: str
    reason: str
    route: str | None = None
    fingerprint: str | None = None

    def matches(self, detector: str, route: str, fingerprint: str) -> bool:
        return (
            self.detector == detector
            and (self.route is None or self.route == route)
            and (self.fingerprint is None or self.fingerprint == fingerprint)
        )


DEFAULT_ROUTE_BUDGET = RouteBudget(DEFAULT_ROUTE, p95_ms=500.0, p99_ms=None, error_rate=0.01, min_rps=100.0)


@dataclass(frozen=True)
class Budgets:
    """All budgets of one service. ``routes`` always holds ``"*"`` (first), then the named routes."""

    service: str | None = None
    routes: tuple[RouteBudget, ...] = (DEFAULT_ROUTE_BUDGET,)
    db_avg_query_ms: float = 100.0
    db_max_query_ms: float = 1000.0
    pool_max_utilization: float = 0.8
    cache_min_hit_ratio: float = 0.5
    slo_target: float = 0.999
    slo_window_days: int = 28
    source: str | None = None  # the file they came from; None = built-in defaults
    alert_for_s: float = 300.0  # [alerts] for: how long a breach lasts before the alert fires
    expected: tuple[ExpectedFinding, ...] = ()  # [[expected]]: findings known and accepted
    _by_route: Mapping[str, RouteBudget] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_route = {r.route: r for r in self.routes}
        if DEFAULT_ROUTE not in by_route:
            raise ValueError('Budgets.routes must contain the default route "*"')
        object.__setattr__(self, "_by_route", by_route)

    @property
    def default(self) -> RouteBudget:
        return self._by_route[DEFAULT_ROUTE]

    @property
    def named_routes(self) -> tuple[RouteBudget, ...]:
        return tuple(r for r in self.routes if r.route != DEFAULT_ROUTE)

    def for_route(self, route: str) -> RouteBudget:
        """The budget of ``"METHOD /template"`` (exact match, method case-insensitive), else ``"*"``."""
        found = self._by_route.get(route) or self._by_route.get(normalize_route(route) or "")
        return found or self._by_route[DEFAULT_ROUTE]

    def latency_budgets_ms(self) -> dict[str, float]:
        """``{route: p95 ms}`` incl. ``"*"``: the form ``Settings.budgets`` and the detector take."""
        return {r.route: r.p95_ms for r in self.routes}


def normalize_route(route: str) -> str | None:
    """``"get  /orders/{id}"`` -> ``"GET /orders/{id}"``; None when it is not ``METHOD /template``."""
    parts = route.split()
    if len(parts) != 2:
        return None
    method, template = parts[0].upper(), parts[1]
    if method not in HTTP_METHODS or not template.startswith("/"):
        return None
    return f"{method} {template}"
