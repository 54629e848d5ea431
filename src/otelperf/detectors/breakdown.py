"""Where a request's time went: its root span's duration split into db / cache / http / app.

Pure functions over a :class:`~otelperf.detectors._api.TraceView`; the latency-budget detector
uses them, and so can a report or a test.

The rule, per instant of the root span's interval (computed by sweeping the sorted boundaries
of the descendants' intervals, each clipped to the root's):

* the instant belongs to the *deepest* span covering it (ties: the one that started last), so
  time inside a db span's own child is not counted twice, and two queries run concurrently by
  ``asyncio.gather`` for 100 ms are 100 ms of db, not 200;
* that span's component (:func:`~otelperf.detectors._api.component_of`) names the instant's
  component, except that a span of component "app" below a db/cache/http span takes its
  parent's component (a driver's or client's internal span, e.g. a connect inside a query) --
  unless it is a SERVER or CONSUMER span: a request handled in this same process under an
  outgoing call (an in-process ASGI transport) is the app's own work again, and its queries
  are db;
* "app" is what is left: the root's time not covered by any db / cache / http work.

The components therefore always add up to the root's duration (exactly, in nanoseconds).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from otelperf import _names
from otelperf.detectors._api import Component, TraceView, attributes_of, component_of, hex_span_id

__all__ = ["COMPONENTS", "Attribution", "Offender", "attribute", "breakdown", "top_offenders"]

COMPONENTS: tuple[Component, ...] = ("db", "cache", "http", "app")
_NEW_CONTEXT_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)
_MAX_DEPTH = 256  # a guard against a malformed parent chain, far above any real nesting


@dataclass(frozen=True)
class Offender:
    """Spans with the same statement (or name) and component, and the exclusive time they took."""

    statement: str
    component: Component
    count: int
    exclusive_ms: float
    span_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "statement": self.statement,
            "component": self.component,
            "count": self.count,
            "exclusive_ms": round(self.exclusive_ms, 3),
        }


@dataclass(frozen=True)
class Attribution:
    """The result of one sweep: per-component milliseconds and the offenders, largest first."""

    total_ms: float
    components: dict[str, float]
    offenders: list[Offender] = field(default_factory=list)
    # The instants (unix ns, sorted, disjoint) given to db / cache / http: what is not app time.
    elsewhere: tuple[tuple[int, int], ...] = ()


@dataclass
class _Interval:
    start: int
    end: int
    depth: int
    component: Component
    owner: int  # index into the owners list: whose exclusive time this is


def _span_id(span: ReadableSpan) -> int:
    return span.context.span_id if span.context is not None else id(span)


def statement_of(span: ReadableSpan) -> str:
    """What groups a span with its repeats: the query text when there is one, else the span name."""
    attributes = attributes_of(span)
    text = attributes.get(_names.DB_QUERY_TEXT) or attributes.get(_names.DB_STATEMENT_LEGACY)
    return str(text) if text else span.name


def attribute(trace: TraceView) -> Attribution:
    """Split the root span's duration into components and rank the spans by exclusive time."""
    root = trace.root
    totals = dict.fromkeys(COMPONENTS, 0)
    if root.start_time is None or root.end_time is None or root.end_time <= root.start_time:
        return Attribution(0.0, {c: 0.0 for c in COMPONENTS})
    root_start, root_end = root.start_time, root.end_time

    owners: list[ReadableSpan] = []
    intervals: list[_Interval] = []
    # Walk the root's descendants (orphans whose parent is not in this view are not the root's).
    seen = {_span_id(root)}  # by id: a span listed twice (or a cycle of bad parents) counts once
    stack: list[tuple[ReadableSpan, int, Component, int]] = [(root, 0, "app", -1)]
    while stack:
        parent, depth, parent_component, parent_owner = stack.pop()
        if depth >= _MAX_DEPTH:
            continue
        for child in trace.children_of(parent):
            child_id = _span_id(child)
            if child_id in seen:
                continue
            seen.add(child_id)
            component = component_of(child)
            if (
                component == "app"
                and parent_component != "app"
                and parent_owner >= 0
                and child.kind not in _NEW_CONTEXT_KINDS
            ):
                component, owner = parent_component, parent_owner
            else:
                owner = len(owners)
                owners.append(child)
            stack.append((child, depth + 1, component, owner))
            if child.start_time is None or child.end_time is None:
                continue
            start, end = max(child.start_time, root_start), min(child.end_time, root_end)
            if end > start:
                intervals.append(_Interval(start, end, depth + 1, component, owner))

    owner_ns = [0] * len(owners)
    intervals.sort(key=lambda i: i.start)
    boundaries = sorted({root_start, root_end, *(i.start for i in intervals), *(i.end for i in intervals)})
    # Heap of the spans started so far, deepest (then latest-started) first; ended ones are
    # dropped lazily when they reach the top, which is the only entry that matters.
    heap: list[tuple[int, int, int]] = []
    elsewhere: list[tuple[int, int]] = []
    nxt = 0
    for t, t_next in itertools.pairwise(boundaries):
        while nxt < len(intervals) and intervals[nxt].start <= t:
            interval = intervals[nxt]
            heapq.heappush(heap, (-interval.depth, -interval.start, -nxt))
            nxt += 1
        while heap and intervals[-heap[0][2]].end <= t:
            heapq.heappop(heap)
        width = t_next - t
        if heap:
            top = intervals[-heap[0][2]]
            totals[top.component] += width
            owner_ns[top.owner] += width
            if top.component != "app":
                if elsewhere and elsewhere[-1][1] == t:
                    elsewhere[-1] = (elsewhere[-1][0], t_next)
                else:
                    elsewhere.append((t, t_next))
        else:
            totals["app"] += width

    return Attribution(
        total_ms=(root_end - root_start) / 1e6,
        components={c: totals[c] / 1e6 for c in COMPONENTS},
        offenders=_rank(owners, owner_ns),
        elsewhere=tuple(elsewhere),
    )


def _rank(owners: list[ReadableSpan], owner_ns: list[int]) -> list[Offender]:
    groups: dict[tuple[Component, str], tuple[int, list[str]]] = {}
    for span, ns in zip(owners, owner_ns, strict=True):
        key = (component_of(span), statement_of(span))
        total, ids = groups.get(key, (0, []))
        ids.append(hex_span_id(span))
        groups[key] = (total + ns, ids)
    ranked = [
        Offender(statement, component, len(ids), total / 1e6, tuple(ids))
        for (component, statement), (total, ids) in groups.items()
        if total > 0
    ]
    ranked.sort(key=lambda o: o.exclusive_ms, reverse=True)
    return ranked


def breakdown(trace: TraceView) -> dict[str, float]:
    """Milliseconds of the root span per component, e.g. for a 400 ms request that waited 300 ms
    on queries: ``{"db": 300.0, "cache": 0.0, "http": 0.0, "app": 100.0}``.
    """
    return attribute(trace).components


def top_offenders(trace: TraceView, n: int = 3) -> list[Offender]:
    """The ``n`` statements (or span names) with the most exclusive time in the request."""
    return attribute(trace).offenders[:n]
