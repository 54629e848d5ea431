"""The request's SERVER span, without the SDK's general-purpose span machinery.

Every request pays for its SERVER span, and on a small route the SDK's ``start_span``/``end`` was
the largest single cost left: a lock per span, a ``BoundedAttributes`` that re-validates every
attribute otelperf built from known types, ``BoundedList``s for events and links, and a copy into
a ``ReadableSpan`` at the end. :class:`RequestSpans` makes a span that keeps plain fields and, when
it ends, hands the SDK's own ended-span type (``ReadableSpan``) to the provider's span processors,
exactly where ``Span.end()`` would. Like the leaf spans (``_leaf.py``):

- the provider's sampler decides, as for any span (``should_sample`` with the parent context);
  a dropped span is a ``NonRecordingSpan`` carrying the decision, as the SDK returns;
- attributes otelperf sets are built from known types and are not re-validated; attributes,
  events and links set by the application go through the SDK's checks and limits;
- span processors see ``on_end`` but not ``on_start`` for these spans (documented).
When the tracer is not the SDK's, :attr:`RequestSpans.enabled` is False and callers use the API.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


class RequestSpans:
    """Starts :class:`RequestSpan` s for one SDK tracer."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._processor = getattr(tracer, "span_processor", None)
        self._resource = getattr(tracer, "resource", None)
        self._scope = getattr(tracer, "_instrumentation_scope", None)
        self._ids = getattr(tracer, "id_generator", None)
        self._sampler = getattr(tracer, "sampler", None)
        self._limits = getattr(tracer, "_span_limits", None)
        self.enabled = None not in (self._processor, self._resource, self._ids, self._sampler, self._limits)

    def start(
        self, name: str, parent: Context, kind: SpanKind, attributes: dict[str, Any] | None
    ) -> trace.Span:
        """A started span (recording or not, as the sampler decides); ``attributes`` are trusted."""
        assert self._ids is not None and self._sampler is not None
        parent_ctx = trace.get_current_span(parent).get_span_context()
        trace_id = parent_ctx.trace_id if parent_ctx.is_valid else self._ids.generate_trace_id()
        result = self._sampler.should_sample(parent, trace_id, name, kind, attributes, None)
        sampled = result.decision is Decision.RECORD_AND_SAMPLE
        context = SpanContext(
            trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED if sampled else _NOT_SAMPLED,
            trace_state=result.trace_state,
        )
        if not result.decision.is_recording():
            return NonRecordingSpan(context)
        if result.attributes:  # a sampler may add attributes
            attributes = {**(attributes or {}), **result.attributes}
        return RequestSpan(
            self,
            name,
            context=context,
            parent=parent_ctx if parent_ctx.is_valid else None,
            kind=kind,
            attributes=attributes,
        )


class RequestSpan(trace.Span):
    """A recording SERVER span; turns into the SDK's ``ReadableSpan`` when it ends."""

    def __init__(
        self,
        owner: RequestSpans,
        name: str,
        *,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any] | None,
    ) -> None:
        self._owner = owner
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes: dict[str, Any] | BoundedAttributes = attributes if attributes is not None else {}
        self._events: list[Event] = []
        self._links: list[Link] = []
        self._status = _UNSET
        self._start = time.time_ns()
        self._end: int | None = None
        self._lock = threading.Lock()  # the app may touch its span from several threads

    # --- what otelperf calls on the hot path ---
    def set_trusted_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Attributes otelperf built from known types: no re-validation."""
        if self._end is None:
            self._attributes.update(attributes)

    # --- the API ---
    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        with self._lock:
            if self._end is not None:
                return
            attributes = self._attributes
            if not isinstance(attributes, BoundedAttributes):
                # The application sets an attribute: from here on the SDK's own container applies
                # its checks, truncation and limit (evicting the oldest), exactly as on its spans.
                limits = self._owner._limits
                attributes = BoundedAttributes(
                    limits.max_span_attributes if limits else None,
                    attributes,
                    immutable=False,
                    max_value_len=limits.max_attribute_length if limits else None,
                )
                self._attributes = attributes
            attributes[key] = value

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        limits = self._owner._limits
        event = Event(
            name,
            BoundedAttributes(
                limits.max_event_attributes if limits else None,
                attributes,
                max_value_len=limits.max_attribute_length if limits else None,
            ),
            timestamp if timestamp is not None else time.time_ns(),
        )
        with self._lock:
            if self._end is None and (not limits or len(self._events) < limits.max_events):
                self._events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not context.is_valid:
            return
        with self._lock:
            limits = self._owner._limits
            if self._end is None and (not limits or len(self._links) < limits.max_links):
                self._links.append(Link(context, BoundedAttributes(None, attributes)))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET never overrides.
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event_attributes: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end is not None:
                return
            self._end = end_time if end_time is not None else time.time_ns()
        owner = self._owner
        span = ReadableSpan(
            self._name,
            context=self._context,
            parent=self._parent,
            resource=owner._resource,
            attributes=self._attributes,
            events=self._events,
            links=self._links,
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_scope=owner._scope,
        )
        assert owner._processor is not None
        owner._processor.on_end(span)

    def __repr__(self) -> str:
        return f"RequestSpan(name={self._name!r}, context={self._context!r})"
