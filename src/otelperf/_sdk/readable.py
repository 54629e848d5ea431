"""Reads of an ended span's fields behind ``ReadableSpan``'s properties.

The properties are Python calls, and some build objects per read (``attributes`` a read-only
proxy, ``events`` a tuple). The encoder, the detector pipeline and the exception scrubber read
several fields of every span, so for a span whose type is exactly ``ReadableSpan`` they read the
fields with these getters (``operator.attrgetter``: one C call for several fields), but only when
:data:`FIELDS_HOLD` (the fields were found where expected on a probe at import, and
``OTELPERF_SDK_FAST_PATHS`` is not 0). Every caller keeps the property path for other spans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList

from otelperf._sdk.span_context import readable_span_fields

__all__ = [
    "FIELDS_HOLD",
    "attributes_and_end",
    "attributes_field",
    "attributes_or_none",
    "context_and_parent",
    "context_of",
    "events_field",
    "events_for_len",
    "head_fields",
    "kind_name_times",
    "kind_of",
    "parent_of",
    "payload_fields",
    "resource_and_scope",
    "status_code_of",
    "status_of",
]

FIELDS_HOLD: bool = readable_span_fields

context_of: Callable[[ReadableSpan], Any] = attrgetter("_context")
parent_of: Callable[[ReadableSpan], Any] = attrgetter("_parent")
status_of: Callable[[ReadableSpan], Any] = attrgetter("_status")
kind_of: Callable[[ReadableSpan], Any] = attrgetter("_kind")
attributes_field: Callable[[ReadableSpan], Any] = attrgetter("_attributes")
events_field: Callable[[ReadableSpan], Any] = attrgetter("_events")
context_and_parent: Callable[[ReadableSpan], tuple[Any, Any]] = attrgetter("_context", "_parent")
kind_name_times: Callable[[ReadableSpan], tuple[Any, Any, Any, Any]] = attrgetter(
    "_kind", "_name", "_start_time", "_end_time"
)
attributes_and_end: Callable[[ReadableSpan], tuple[Any, Any]] = attrgetter("_attributes", "_end_time")
# The encoder's: events, links and attributes first (they decide the path), then the rest.
payload_fields: Callable[[ReadableSpan], tuple[Any, Any, Any]] = attrgetter(
    "_events", "_links", "_attributes"
)
head_fields: Callable[[ReadableSpan], tuple[Any, Any, Any, Any, Any, Any, Any]] = attrgetter(
    "_context", "_parent", "_name", "_kind", "_start_time", "_end_time", "_status"
)
resource_and_scope: Callable[[ReadableSpan], tuple[Any, Any]] = attrgetter(
    "_resource", "_instrumentation_scope"
)
status_code_of: Callable[[Any], Any] = attrgetter("_status_code")  # Status.status_code, without the call


def attributes_or_none(span: object) -> Any:
    """The span's attribute mapping itself (no proxy), or None for a span that keeps none there."""
    return getattr(span, "_attributes", None)


def events_for_len(span: ReadableSpan) -> Sequence[Any]:
    """The span's events as a sequence whose ``len()``/truth is answered in C: the SDK's spans keep
    them in a ``BoundedList`` (its ``len()`` is Python code) around a deque; otelperf's, a tuple.
    Raises AttributeError for a span that keeps no ``_events``."""
    events: Any = span._events
    if events.__class__ is BoundedList:
        events = events._dq  # type: ignore[attr-defined]
    return events  # type: ignore[no-any-return]
