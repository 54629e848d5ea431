"""Reading a ``SpanContext``'s (and a ``ReadableSpan``'s) fields without a Python call per field.

``SpanContext`` is a tuple subclass whose fields (``trace_id``, ``span_id``, ``trace_flags``, ...)
are Python properties: each read is a Python function call, about a thousand machine instructions,
and every span otelperf writes reads a dozen of them (its parent's ids and flags for the span, the
exemplar, the detector pipeline). The tuple underneath holds the same values in a fixed order, and
``operator.itemgetter`` reads them in C.

The order is checked once, at import, on a probe context; should a future API change it, the
accessors fall back to the properties (``operator.attrgetter``): slower, never wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter, itemgetter
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from otelperf._sdk.fast_paths import env_forced_off

__all__ = [
    "is_remote",
    "is_valid",
    "readable_span_fields",
    "span_id",
    "trace_flags",
    "trace_id",
    "trace_state",
    "uses_tuple_layout",
]

_FIELDS = ("trace_id", "span_id", "is_remote", "trace_flags", "trace_state", "is_valid")


def _tuple_layout_holds() -> bool:
    try:
        state = TraceState([("probe", "1")])
        probe = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0x03), trace_state=state)
        return (
            isinstance(probe, tuple)
            and all(
                probe[index] is getattr(probe, name) or probe[index] == getattr(probe, name)
                for index, name in enumerate(_FIELDS)
            )
            and probe[4] is state
            and probe[2] is True
            and probe[5] is True
        )
    except Exception:  # an API whose SpanContext is not a tuple at all
        return False


uses_tuple_layout = _tuple_layout_holds() and not env_forced_off()

_getters: list[Callable[[Any], Any]] = [
    itemgetter(index) if uses_tuple_layout else attrgetter(name) for index, name in enumerate(_FIELDS)
]
trace_id: Callable[[SpanContext], int] = _getters[0]
span_id: Callable[[SpanContext], int] = _getters[1]
is_remote: Callable[[SpanContext], bool] = _getters[2]
trace_flags: Callable[[SpanContext], int] = _getters[3]  # a TraceFlags: & 0x01 is "sampled"
trace_state: Callable[[SpanContext], TraceState] = _getters[4]
is_valid: Callable[[SpanContext], bool] = _getters[5]


# --- ReadableSpan ----------------------------------------------------------------------------------
# Its fields are properties too (``span.context`` returns ``span._context``). Code that reads many
# spans (the OTLP encoder, the detector pipeline) reads the attributes behind them for a span whose
# type is exactly ReadableSpan, when this probe finds them where expected. Never ``span.__dict__``:
# on CPython 3.11+ that builds a dict for the object.

_READABLE_FIELDS = (
    "_context", "_parent", "_name", "_kind", "_start_time", "_end_time", "_status", "_attributes",
    "_events", "_links", "_resource", "_instrumentation_scope",
)  # fmt: skip


def _readable_span_fields_hold() -> bool:
    try:
        from opentelemetry.sdk.trace import ReadableSpan

        parent = SpanContext(0x12, 0x34, is_remote=True)
        probe = ReadableSpan("probe", parent=parent, attributes={"k": "v"}, start_time=1, end_time=2)
        return all(hasattr(probe, name) for name in _READABLE_FIELDS) and (
            probe._name == probe.name == "probe"
            and probe._parent is probe.parent is parent
            and probe._start_time == 1
            and probe._end_time == 2
            and probe._attributes == {"k": "v"}
        )
    except Exception:  # no SDK, or one that keeps them elsewhere: the properties, always
        return False


readable_span_fields = _readable_span_fields_hold() and not env_forced_off()
