"""Reading a ``SpanContext``'s fields without a Python call per field.

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

__all__ = ["is_remote", "is_valid", "span_id", "trace_flags", "trace_id", "trace_state", "uses_tuple_layout"]

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


uses_tuple_layout = _tuple_layout_holds()

_getters: list[Callable[[Any], Any]] = [
    itemgetter(index) if uses_tuple_layout else attrgetter(name) for index, name in enumerate(_FIELDS)
]
trace_id: Callable[[SpanContext], int] = _getters[0]
span_id: Callable[[SpanContext], int] = _getters[1]
is_remote: Callable[[SpanContext], bool] = _getters[2]
trace_flags: Callable[[SpanContext], int] = _getters[3]  # a TraceFlags: & 0x01 is "sampled"
trace_state: Callable[[SpanContext], TraceState] = _getters[4]
is_valid: Callable[[SpanContext], bool] = _getters[5]
