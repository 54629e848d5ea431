"""Latency budgets: a request over its route's budget becomes a finding that says where the time went.

Budgets come from ``Settings.budgets`` (``init(budgets=...)`` or ``OTELPERF_BUDGETS``), in
milliseconds, keyed by route:

* ``"GET /orders/{id}": 200`` -- the budget of requests whose SERVER span has exactly that name;
* ``"*": 500`` -- the budget of every other route.

Component budgets use the same mapping, with a component name (``db``, ``cache``, ``http``,
``app``) as the key, or a route, one space and a component for that route alone::

    OTELPERF_BUDGETS='GET /orders/{id}=200ms,*=500ms,db=150ms,cache=20ms,GET /search http=300ms'

(route-specific beats all-routes; the ``component_budgets=`` argument of the class, for code that
builds the detector itself, applies to all routes and beats the settings). A component budget is
checked against that component's exclusive time in the request (see :mod:`.breakdown`).

Only requests are checked: a local root of kind SERVER. A breach is one finding (severity
"critical" beyond twice the budget) anchored on the request's span, with the breakdown and the
top offending statements in its details and hint, and, when the sampling profiler followed the
request (:mod:`otelperf.profiler`), the functions its app time went to. Every request, breached or not, feeds
:meth:`LatencyBudgetDetector.route_stats` (p50/p95/p99 and breach rate per route over a bounded
window) and the ``otelperf.request.breakdown`` histogram (where the time of over-budget requests
went, per component; within-budget requests skip the sweep, which is the costly part).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from otelperf import _names
from otelperf._sdk import readable as _readable
from otelperf.detectors._api import Finding, Severity, TraceView, hex_span_id
from otelperf.detectors._callsites import CallSite, common_call_site
from otelperf.detectors.breakdown import COMPONENTS, Attribution, Offender, attribute
from otelperf.profiler import take as take_samples

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelperf.config import Settings
    from otelperf.profiler import AppProfile, RequestSamples

__all__ = ["LatencyBudgetDetector", "RouteStats", "split_budgets"]

ALL_ROUTES = "*"
OVERFLOW_ROUTE = "_other"  # metric label of routes beyond max_routes: keeps Prometheus bounded
MAX_SPAN_IDS = 50
_STATEMENT_CHARS = 60
_NO_COMPONENT_BUDGETS: dict[str, float] = {}


def split_budgets(
    budgets: Mapping[str, float],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Separate ``{route: ms}`` from ``{route or "*": {component: ms}}`` in one budgets mapping."""
    routes: dict[str, float] = {}
    components: dict[str, dict[str, float]] = {}
    for raw_key, ms in budgets.items():
        key = raw_key.strip()
        route, _, last = key.rpartition(" ")
        if key in COMPONENTS:
            components.setdefault(ALL_ROUTES, {})[key] = float(ms)
        elif last in COMPONENTS and route.strip():
            components.setdefault(route.strip(), {})[last] = float(ms)
        else:
            routes[key] = float(ms)
    return routes, components


def route_fingerprint(route: str, component: str | None = None) -> str:
    key = route if component is None else f"{route}\x00{component}"
    return hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class RouteStats:
    """One route's latency over the window: what ``otelperf report`` shows per route."""

    route: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    breach_rate: float
    budget_ms: float | None


class _RouteWindow:
    __slots__ = ("budget_ms", "samples")

    def __init__(self, maxlen: int) -> None:
        self.samples: deque[tuple[int, float, bool]] = deque(maxlen=maxlen)  # (end ns, ms, breached)
        self.budget_ms: float | None = None

    def prune(self, oldest_ns: int) -> None:
        while self.samples and self.samples[0][0] < oldest_ns:
            self.samples.popleft()


def _percentile(ordered: list[float], q: float) -> float:
    # Nearest rank: an observed value, never an interpolation between two requests.
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class LatencyBudgetDetector:
    """Checks each request against its budgets and keeps a rolling latency view per route."""

    name = "latency_budget"

    def __init__(
        self,
        settings: Settings,
        meter: Meter | None,
        *,
        component_budgets: Mapping[str, float] | None = None,
        window_s: float = 300.0,
        window_requests: int = 1000,
        max_routes: int = 500,
        top: int = 3,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._routes, self._components = split_budgets(settings.budgets)
        if component_budgets:
            unknown = sorted(set(component_budgets) - set(COMPONENTS))
            if unknown:
                raise ValueError(f"component_budgets: unknown component(s) {unknown}; use {COMPONENTS}")
            shared = self._components.setdefault(ALL_ROUTES, {})
            shared.update({c: float(ms) for c, ms in component_budgets.items()})
        self._window_ns = int(window_s * 1e9)
        self._window_requests = window_requests
        self._max_routes = max_routes
        self._top = top
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[str, _RouteWindow] = OrderedDict()
        self._metric_routes: set[str] = set()
        self.evicted_routes = 0
        self._breaches: Any = None
        self._breakdown: Any = None
        if meter is not None:
            self._breaches = meter.create_counter(
                _names.METRIC_BUDGET_BREACHES,
                unit="{request}",
                description="Requests over their latency budget (budget=request) or a component budget.",
            )
            self._breakdown = meter.create_histogram(
                _names.METRIC_REQUEST_BREAKDOWN,
                unit="s",
                description="Exclusive time of each request per component (db, cache, http, app).",
                explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
            )

    # --- budgets ---
    def budget_for(self, route: str) -> float | None:
        budget = self._routes.get(route)
        return self._routes.get(ALL_ROUTES) if budget is None else budget

    def component_budgets_for(self, route: str) -> dict[str, float]:
        if not self._components:
            return {}
        return {**self._components.get(ALL_ROUTES, {}), **self._components.get(route, {})}

    # --- the detector ---
    def analyze(self, trace: TraceView) -> list[Finding]:
        root = trace.root
        if _readable.FIELDS_HOLD and type(root) is ReadableSpan:  # the fields, not the properties
            kind, route, start, end = _readable.kind_name_times(root)
        else:
            kind, route, start, end = root.kind, root.name, root.start_time, root.end_time
        if kind is not SpanKind.SERVER:
            return []
        samples = _samples_of(root)  # taken for every request: the profiler keeps them until then
        total = (end - start) / 1e6 if start is not None and end is not None else 0.0
        budget = self._routes.get(route)  # budget_for(), inline: once per request
        if budget is None:
            budget = self._routes.get(ALL_ROUTES)
        breached = budget is not None and total > budget
        component_budgets = self.component_budgets_for(route) if self._components else _NO_COMPONENT_BUDGETS
        metric_route = self._remember(route, end or 0, total, breached, budget)

        if not breached and not component_budgets:
            return []  # within budget: the sweep is only worth its cost for requests that breach
        result = attribute(trace)
        if self._breakdown is not None and breached:
            for component, ms in result.components.items():
                if ms > 0:
                    self._breakdown.record(ms / 1000.0, {"route": metric_route, "component": component})

        profile = None
        if samples is not None and start is not None and end is not None:
            from otelperf.profiler.analysis import analyze as analyze_samples  # first use: a breach

            profile = analyze_samples(
                samples,
                start_ns=start,
                end_ns=end,
                app_ms=result.components.get("app", 0.0),
                elsewhere=result.elsewhere,
            )
        findings: list[Finding] = []
        if budget is not None and breached:
            findings.append(self._request_finding(trace, result, total, budget, profile=profile))
            self._count_breach(metric_route, "request")
        for component, limit in component_budgets.items():
            spent = result.components.get(component, 0.0)
            if spent > limit:
                app = profile if component == "app" else None
                findings.append(self._component_finding(trace, result, component, spent, limit, profile=app))
                self._count_breach(metric_route, component)
        return findings

    def _request_finding(
        self,
        trace: TraceView,
        result: Attribution,
        total: float,
        budget: float,
        *,
        profile: AppProfile | None = None,
    ) -> Finding:
        route = trace.route
        top = result.offenders[: self._top]
        parts = []
        for component, ms in sorted(result.components.items(), key=lambda kv: kv[1], reverse=True):
            if ms >= 0.5:
                share = ms / total * 100 if total > 0 else 0.0
                parts.append(f"{component} {ms:.0f} ms ({share:.0f}%)")
        hint = f"{total:.0f} ms, budget {budget:.0f} ms: " + ", ".join(parts)
        if top:
            hint += "; top: " + _describe(top[0])
        details: dict[str, Any] = {
            "budget_ms": budget,
            "over_ms": round(total - budget, 3),
            "breakdown": {c: round(ms, 3) for c, ms in result.components.items()},
            "top_offenders": [o.as_dict() for o in top],
        }
        if profile is not None:
            hint += "; " + profile.summary()
            details["app_profile"] = profile.as_dict()
        details.update(_where(trace, result, top, profile))
        return Finding(
            detector=self.name,
            severity=_severity(total, budget),
            route=route,
            fingerprint=route_fingerprint(route),
            statement=route,
            count=1,
            duration_ms=total,
            trace_id=trace.trace_id,
            anchor_span_id=hex_span_id(trace.root),
            span_ids=_span_ids(trace, top),
            hint=hint,
            details=details,
        )

    def _component_finding(
        self,
        trace: TraceView,
        result: Attribution,
        component: str,
        spent: float,
        limit: float,
        *,
        profile: AppProfile | None = None,
    ) -> Finding:
        route = trace.route
        top = [o for o in result.offenders if o.component == component][: self._top]
        hint = f"{component} took {spent:.0f} ms of a {limit:.0f} ms {component} budget"
        if top:
            hint += "; top: " + _describe(top[0])
        details: dict[str, Any] = {
            "component": component,
            "budget_ms": limit,
            "over_ms": round(spent - limit, 3),
            "breakdown": {c: round(ms, 3) for c, ms in result.components.items()},
            "top_offenders": [o.as_dict() for o in top],
        }
        if profile is not None:
            hint += "; " + profile.summary()
            details["app_profile"] = profile.as_dict()
        details.update(_where(trace, result, top, profile))
        return Finding(
            detector=self.name,
            severity=_severity(spent, limit),
            route=route,
            fingerprint=route_fingerprint(route, component),
            statement=f"{route} ({component})",
            count=1,
            duration_ms=spent,
            trace_id=trace.trace_id,
            anchor_span_id=hex_span_id(trace.root),
            span_ids=_span_ids(trace, top),
            hint=hint,
            details=details,
        )

    def _count_breach(self, metric_route: str, which: str) -> None:
        if self._breaches is not None:
            self._breaches.add(1, {"route": metric_route, "budget": which})

    # --- the rolling per-route view ---
    def _remember(self, route: str, end_ns: int, ms: float, breached: bool, budget: float | None) -> str:
        """File one request under its route; returns the route's metric label."""
        with self._lock:
            window = self._windows.get(route)
            if window is None:
                if len(self._windows) >= self._max_routes:
                    self._windows.popitem(last=False)
                    self.evicted_routes += 1
                window = self._windows[route] = _RouteWindow(self._window_requests)
            else:
                self._windows.move_to_end(route)
            window.budget_ms = budget
            samples = window.samples
            samples.append((end_ns, ms, breached))
            if samples[0][0] < end_ns - self._window_ns:  # most requests: nothing to drop
                window.prune(end_ns - self._window_ns)
            if route in self._metric_routes:
                return route
            if len(self._metric_routes) < self._max_routes:
                self._metric_routes.add(route)
                return route
            return OVERFLOW_ROUTE

    def route_stats(self, now_ns: int | None = None) -> dict[str, RouteStats]:
        """p50/p95/p99 and breach rate per route over the window (the last ``window_s`` seconds,
        at most ``window_requests`` requests per route, at most ``max_routes`` routes)."""
        now = self._clock() if now_ns is None else now_ns
        out: dict[str, RouteStats] = {}
        with self._lock:
            for route, window in list(self._windows.items()):
                window.prune(now - self._window_ns)
                if not window.samples:
                    del self._windows[route]  # an idle route gives its room back
                    continue
                ordered = sorted(ms for _, ms, _ in window.samples)
                breaches = sum(1 for _, _, b in window.samples if b)
                out[route] = RouteStats(
                    route=route,
                    count=len(ordered),
                    p50_ms=_percentile(ordered, 0.50),
                    p95_ms=_percentile(ordered, 0.95),
                    p99_ms=_percentile(ordered, 0.99),
                    breach_rate=breaches / len(ordered),
                    budget_ms=window.budget_ms,
                )
        return out


def _samples_of(root: ReadableSpan) -> RequestSamples | None:
    """What the profiler sampled of this request, if it followed it (it hands them out once)."""
    context = root.context
    return take_samples(context.span_id) if context is not None else None


def _severity(spent: float, limit: float) -> Severity:
    return "critical" if spent > 2 * limit else "warning"


def _describe(offender: Offender) -> str:
    statement = " ".join(offender.statement.split())
    if len(statement) > _STATEMENT_CHARS:
        statement = statement[: _STATEMENT_CHARS - 3] + "..."
    return f"{statement} {offender.count}x {offender.exclusive_ms:.0f} ms"


def _where(
    trace: TraceView, result: Attribution, top: list[Offender], profile: AppProfile | None
) -> dict[str, Any]:
    """The call site of a budget finding (``call_site`` and the ``code.*`` keys), {} when unknown:
    where most of the request's time went in the application's code. When app time is the largest
    part and the profiler saw it, the function it went to; otherwise the line that ran the top
    offender (its statements' or calls' shared call site)."""
    components = result.components
    app_leads = bool(components) and max(components, key=lambda c: components[c]) == "app"
    if profile is not None and app_leads:
        hot = next((f for f in profile.functions if f.function is not None and f.path), None)
        if hot is not None and hot.path is not None and hot.function is not None:
            return CallSite(hot.path, hot.line, hot.function).details()
    if top:
        wanted = set(top[0].span_ids)
        site = common_call_site(s for s in trace.spans if hex_span_id(s) in wanted)
        if site is not None:
            return site.details()
    return {}


def _span_ids(trace: TraceView, offenders: list[Offender]) -> tuple[str, ...]:
    ids = [hex_span_id(trace.root)]
    for offender in offenders:
        ids.extend(offender.span_ids)
    return tuple(ids[:MAX_SPAN_IDS])
