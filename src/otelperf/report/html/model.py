"""What the HTML report shows, as plain data: collected from Prometheus/Jaeger, or built by a test.

Latencies are milliseconds, rates are per second, error rates are fractions (0.01 = 1 %).
A series is a list of ``(unix seconds, value or None)``; None is a gap (no requests in that step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otelperf.backends.jaeger import Trace

Series = list[tuple[float, "float | None"]]
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass(frozen=True)
class Budget:
    """A route's budget (from otelperf.budgets); None = not budgeted."""

    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float | None = None
    min_rps: float | None = None


@dataclass
class RouteReport:
    route: str  # "GET /orders/{order_id}": method and http.route, the SERVER span's name
    requests: float
    errors: float  # 5xx responses
    seconds: float  # the window's length, for the average throughput
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    latency: dict[str, Series] = field(default_factory=dict)  # "p50" | "p95" | "p99" -> ms
    throughput: Series = field(default_factory=list)  # req/s
    error_rate: Series = field(default_factory=list)  # fraction of requests answered 5xx
    budget: Budget | None = None
    slowest_trace_id: str | None = None  # an exemplar of the route's slowest bucket

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0

    def breaches(self) -> list[str]:
        """What is over (or under) budget, in words; empty when within budget or unbudgeted."""
        b = self.budget
        if b is None or self.requests <= 0:
            return []
        out = []
        if b.p95_ms is not None and self.p95_ms is not None and self.p95_ms > b.p95_ms:
            out.append(f"p95 {self.p95_ms:.0f} ms > {b.p95_ms:g} ms")
        if b.p99_ms is not None and self.p99_ms is not None and self.p99_ms > b.p99_ms:
            out.append(f"p99 {self.p99_ms:.0f} ms > {b.p99_ms:g} ms")
        if b.error_rate is not None and self.error_ratio > b.error_rate:
            out.append(f"errors {self.error_ratio:.2%} > {b.error_rate:.2%}")
        if b.min_rps is not None and self.rps < b.min_rps:
            out.append(f"throughput {self.rps:.1f} req/s < {b.min_rps:g} req/s")
        return out

    @property
    def verdict(self) -> str:
        """ "no data" | "no budget" | "within budget" | "over budget"."""
        if self.requests <= 0:
            return "no data"
        if self.budget is None:
            return "no budget"
        return "over budget" if self.breaches() else "within budget"


@dataclass(frozen=True)
class Finding:
    """One kind of finding (detector x route x fingerprint) over the window."""

    service: str
    detector: str
    severity: str
    route: str
    fingerprint: str
    statement: str
    occurrences: float
    total_ms: float
    trace_ids: tuple[str, ...] = ()  # example traces carrying this finding's span event
    expected: bool = False  # marked expected (otelperf.expect() or [[expected]]): no alert, no gate
    call_site: str = ""  # "app/routes.py:42 in list_authors()", when known


@dataclass(frozen=True)
class DbOperation:
    """A database span name (spanmetrics) with its time over the window."""

    name: str
    system: str
    calls: float
    total_ms: float

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.calls if self.calls > 0 else 0.0


@dataclass
class RouteFlame:
    """The profiler's folded stacks of one route's over-budget requests, added up (flame.py)."""

    route: str
    stacks: dict[str, float] = field(default_factory=dict)  # "frame;frame" -> ms
    requests: int = 0

    @property
    def total_ms(self) -> float:
        return sum(self.stacks.values())


@dataclass(frozen=True)
class BaselineRoute:
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    rps: float | None = None
    error_rate: float | None = None


@dataclass
class ReportData:
    service: str  # "" = every service
    start: float
    end: float
    prometheus: str
    jaeger: str
    routes: list[RouteReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    db_operations: list[DbOperation] = field(default_factory=list)
    # Over-budget routes' profiled app time (folded stacks from Jaeger): the flame graphs (flame.py).
    flames: list[RouteFlame] = field(default_factory=list)
    client_latency: dict[str, Series] = field(default_factory=dict)  # load generator's view, ms
    client_requests: float = 0.0
    service_min_rps: float | None = None  # the budgets' floor for all routes together
    baseline: dict[str, BaselineRoute] | None = None
    baseline_source: str = ""
    notes: list[str] = field(default_factory=list)  # what could not be read (Jaeger down, ...)
    traces: dict[str, Trace] = field(default_factory=dict)  # example traces of findings, by id

    @property
    def total_rps(self) -> float:
        seconds = self.end - self.start
        return sum(r.requests for r in self.routes) / seconds if seconds > 0 else 0.0

    def trace_url(self, trace_id: str) -> str:
        return f"{self.jaeger.rstrip('/')}/trace/{trace_id}"
