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
- the span offers the SDK ``Span``'s whole public API (``name``, ``attributes``, ``events``,
  ``status``, ``to_json()``...): application code reading ``trace.get_current_span()`` cannot tell;
- only while :class:`~otelperf._sdk.fast_paths.SpanPathGate` finds it equivalent (no processor that
  needs ``on_start``, default limits, a known sampler, the SDK's id generator, an enabled tracer);
  otherwise :meth:`RequestSpans.start` returns the SDK's own span from ``Tracer.start_span``.
When the tracer is not the SDK's, :attr:`RequestSpans.enabled` is False and callers use the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from otelperf._sdk import leaf as _leaf
from otelperf._sdk import span_context as _ctx
from otelperf._sdk.fast_paths import SpanPathGate
from otelperf._sdk.leaf import _getrandbits, _new_context
from otelperf._sdk.sampling import plain_rule
from otelperf.redaction.exceptions import exception_attributes

_UNSET = _leaf.UNSET  # the shared "unset" status the detector pipeline knows without reading it
# Flags by (sampled, random trace id): the SDK marks W3C level-2 "random trace id" when its id
# generator says so for a root, or when the parent had it.
_RANDOM: int = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)  # API 1.42+; never set before
_FLAGS = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (_RANDOM if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}
# App-side changes to a request span (attributes, events, status from several threads) are rare;
# one lock for all of them costs less than a lock made per request.
_APP_LOCK = threading.Lock()


_logger = logging.getLogger(__name__)


class RequestSpans:
    """Starts the request spans of one SDK tracer: :class:`RequestSpan` while the fast path is
    valid, the SDK's own span otherwise."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._gate = SpanPathGate(tracer)
        self._processor = getattr(tracer, "span_processor", None)
        self._resource = getattr(tracer, "resource", None)
        self._scope = getattr(tracer, "_instrumentation_scope", None)
        self._info = getattr(tracer, "instrumentation_info", None)
        self._ids = getattr(tracer, "id_generator", None)
        self._sampler = getattr(tracer, "sampler", None)
        self._limits = getattr(tracer, "_span_limits", None)
        # What the sampler answers when the gate is open: "on" (ALWAYS_ON) or "parent".
        self._follows_parent = plain_rule(self._sampler) == "parent"
        is_random = getattr(self._ids, "is_trace_id_random", None)  # SDK 1.42+
        self._random_ids = bool(is_random()) if callable(is_random) else False
        self.enabled = None not in (self._processor, self._resource, self._ids, self._sampler)

    @property
    def reason(self) -> str | None:
        """Why the fast path is off (None while it is on)."""
        self._gate.open()
        return self._gate.reason

    def start(
        self, name: str, parent: Context, kind: SpanKind, attributes: dict[str, Any] | None
    ) -> trace.Span:
        """A started span (recording or not, as the sampler decides); ``attributes`` are trusted."""
        if not self._gate.open():
            return self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        assert self._ids is not None
        parent_ctx = _leaf.parent_in(parent)
        valid_parent = _ctx.is_valid(parent_ctx)
        if valid_parent:
            trace_id = _ctx.trace_id(parent_ctx)
        else:  # RandomIdGenerator.generate_trace_id(), inline (the gate admits no other generator)
            trace_id = _getrandbits(128) or self._ids.generate_trace_id()
        parent_flags = _ctx.trace_flags(parent_ctx) if valid_parent else 0
        # The gate admits ALWAYS_ON ("on") and ParentBased(ALWAYS_ON) ("parent") only.
        if self._follows_parent:
            sampled = not valid_parent or bool(parent_flags & TraceFlags.SAMPLED)
        else:
            sampled = True
        trace_state = _ctx.trace_state(parent_ctx) if valid_parent else DEFAULT_TRACE_STATE
        flags = _FLAGS[sampled, bool(parent_flags & _RANDOM) if valid_parent else self._random_ids]
        span_id = _getrandbits(64) or self._ids.generate_span_id()
        if _ctx.uses_tuple_layout:  # what SpanContext() builds from ids it finds valid (these are)
            context = _new_context((trace_id, span_id, False, flags, trace_state, True))
        else:
            context = SpanContext(
                trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=trace_state
            )
        if not sampled:
            return NonRecordingSpan(context)
        return RequestSpan(
            self,
            name,
            context=context,
            parent=parent_ctx if valid_parent else None,
            kind=kind,
            attributes=attributes,
        )


class RequestSpan(trace.Span):
    """A recording SERVER span; turns into the SDK's ``ReadableSpan`` when it ends.

    Its public surface is the SDK ``Span``'s (tests/unit/sdk/test_request_span_api.py compares them).
    """

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
        self._dropped_events = 0
        self._dropped_links = 0
        self._status = _UNSET
        self._start = time.time_ns()
        self._end: int | None = None

    # --- what otelperf calls on the hot path ---
    def set_trusted_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Attributes otelperf built from known types: no re-validation."""
        if self._end is None:
            self._attributes.update(attributes)

    # --- the SDK span's read side ---
    @property
    def name(self) -> str:
        return self._name

    @property
    def context(self) -> SpanContext:
        return self._context

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    @property
    def kind(self) -> SpanKind:
        return self._kind

    @property
    def start_time(self) -> int:
        return self._start

    @property
    def end_time(self) -> int | None:
        return self._end

    @property
    def status(self) -> Status:
        return self._status

    @property
    def attributes(self) -> types.Attributes:
        attributes = self._attributes
        return MappingProxyType(attributes) if type(attributes) is dict else attributes

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events)

    @property
    def links(self) -> tuple[Link, ...]:
        return tuple(self._links)

    @property
    def dropped_attributes(self) -> int:
        return getattr(self._attributes, "dropped", 0)

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    @property
    def resource(self) -> Any:
        return self._owner._resource

    @property
    def instrumentation_scope(self) -> Any:
        return self._owner._scope

    @property
    def instrumentation_info(self) -> Any:
        return self._owner._info

    def to_json(self, indent: int | None = 4) -> str:
        json: str = self._readable().to_json(indent)
        return json

    # --- the API ---
    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def start(self, start_time: int | None = None, parent_context: Context | None = None) -> None:
        # The SDK's answer to a second start(): this span started when it was made.
        _logger.warning("Calling start() on a started span.")

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        with _APP_LOCK:
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
        with _APP_LOCK:
            if self._end is not None:
                return
            if limits and len(self._events) >= limits.max_events:  # the SDK's BoundedList: oldest out
                self._dropped_events += 1
                del self._events[0]
            self._events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if context is None or (not context.is_valid and not attributes):  # the SDK's rule
            return
        limits = self._owner._limits
        link = Link(
            context,
            BoundedAttributes(
                limits.max_link_attributes if limits else None,
                attributes,
                max_value_len=limits.max_attribute_length if limits else None,
            ),
        )
        with _APP_LOCK:
            if self._end is not None:
                return
            if limits and len(self._links) >= limits.max_links:
                self._dropped_links += 1
                del self._links[0]
            self._links.append(link)

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
        # Sanitized when recorded (redaction/exceptions.py): a message can quote SQL parameters,
        # a URL's credentials or a row's values.
        event_attributes: dict[str, Any] = exception_attributes(exception, escaped=escaped)
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end(self, end_time: int | None = None) -> None:
        with _APP_LOCK:
            if self._end is not None:
                _logger.warning("Calling end() on an ended span.")
                return
            self._end = end_time if end_time is not None else time.time_ns()
        _leaf.hand_to(self._owner._processor, self._readable())

    def _readable(self) -> ReadableSpan:
        owner = self._owner
        return _leaf.readable_span(
            self._name,
            self._context,
            self._parent,
            owner._resource,
            self._attributes,
            _sequence(self._events, self._dropped_events) if self._events else (),
            _sequence(self._links, self._dropped_links) if self._links else (),
            self._kind,
            self._status,
            self._start,
            self._end,  # type: ignore[arg-type]  # None before end(), as on the SDK's span
            owner._scope,
        )

    def __repr__(self) -> str:
        return f"RequestSpan(name={self._name!r}, context={self._context!r})"


def _sequence(items: list[Any], dropped: int) -> Sequence[Any]:
    """A tuple, or with drops the SDK's BoundedList carrying the count (``ReadableSpan``'s
    ``dropped_events``/``dropped_links`` read it from there)."""
    if not dropped:
        return tuple(items)
    bounded: BoundedList[Any] = BoundedList(len(items))
    bounded.extend(items)
    bounded.dropped = dropped
    return bounded


_leaf.register_plain_span_type(RequestSpan)  # a trace.Span: get_current_span() accepts it as it is
