"""Example traces for findings, from Jaeger (through :class:`otelperf.backends.Jaeger`).

The findings counters carry no exemplars, but every finding is also an ``otelperf.finding`` span
event in its trace, under the request's SERVER span (whose name is the finding's route). So the
report searches Jaeger once per (service, route) that had findings, by operation name, and keeps
the first few trace ids per (detector, fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable

from otelperf import _names
from otelperf.backends import Jaeger
from otelperf.backends.jaeger import Trace, group_traces, iter_events

EXAMPLES_PER_FINDING = 3
TRACES_PER_SEARCH = 100

# (service, detector, fingerprint) and (service, detector, route) -> example trace ids
Examples = dict[tuple[str, str, str], list[str]]


def finding_traces(
    jaeger: Jaeger,
    routes: Iterable[tuple[str, str]],
    start: float,
    end: float,
    traces: dict[str, Trace] | None = None,
) -> Examples:
    """Raises :class:`~otelperf.backends.BackendError` when Jaeger cannot be read.

    ``traces``, when given, receives the spans of each example trace (the search answers whole
    traces), for the report's waterfalls: no further request."""
    out: Examples = {}
    for service, route in sorted(set(routes)):
        if not service:
            continue
        spans = jaeger.search_spans(service, operation=route, start=start, end=end, limit=TRACES_PER_SEARCH)
        for span, event in iter_events(spans, _names.FINDING_EVENT):
            detector = str(event.attributes.get(_names.FINDING_DETECTOR, ""))
            for key in (
                (service, detector, str(event.attributes.get(_names.FINDING_FINGERPRINT, ""))),
                (service, detector, route),
            ):
                ids = out.setdefault(key, [])
                if span.trace_id not in ids and len(ids) < EXAMPLES_PER_FINDING:
                    ids.append(span.trace_id)
        if traces is not None:
            wanted = {i for ids in out.values() for i in ids[:1]} - set(traces)  # the first example
            traces.update((t.trace_id, t) for t in group_traces(spans) if t.trace_id in wanted)
    return out
