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
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, StaticSampler
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

from otelperf._sdk import leaf as _leaf
from otelperf._sdk import span_context as _ctx
from otelperf._sdk.leaf import _getrandbits, _new_context
from otelperf.redaction.exceptions import exception_attributes

_UNSET = _leaf.UNSET  # the shared "unset" status the detector pipeline knows without reading it
_OK = StatusCode.OK  # an Enum member read from its class costs ~100 ns on CPython 3.11
# Flags by (sampled, random trace id): the SDK marks W3C level-2 "random trace id" when its id
# generator says so for a root, or when the parent had it.
_FLAGS = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        | (TraceFlags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}
# App-side changes to a request span (attributes, events, status from several threads) are rare;
# one lock for all of them costs less than a lock made per request.
_APP_LOCK = threading.Lock()


def _static_decision(sampler: object) -> Decision | None:
    if type(sampler) is StaticSampler:
        decision = getattr(sampler, "_decision", None)
        return decision if isinstance(decision, Decision) else None
    return None


def _plain_rule(sampler: Sampler | None) -> str | None:
    """``"on"``/``"off"`` for the SDK's ALWAYS_ON/ALWAYS_OFF, ``"parent"`` for ParentBased(ALWAYS_ON)
    with its default delegates; None for any other sampler (it is asked every time).

    These samplers' answers depend only on the parent, and ALWAYS_ON echoes the span's own
    attributes back (which the SDK then merges, a copy per span): deciding here gives the same
    decision and trace state without the call."""
    decision = _static_decision(sampler)
    if decision is not None:
        if decision is Decision.RECORD_AND_SAMPLE:
            return "on"
        return "off" if decision is Decision.DROP else None
    if type(sampler) is ParentBased:
        delegates = [
            _static_decision(getattr(sampler, name, None))
            for name in ("_root", "_remote_parent_sampled", "_local_parent_sampled")
        ]
        unsampled = [
            _static_decision(getattr(sampler, name, None))
            for name in ("_remote_parent_not_sampled", "_local_parent_not_sampled")
        ]
        on = all(d is Decision.RECORD_AND_SAMPLE for d in delegates)
        if on and all(d is Decision.DROP for d in unsampled):
            return "parent"
    return None


class RequestSpans:
    """Starts :class:`RequestSpan` s for one SDK tracer."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._processor = getattr(tracer, "span_processor", None)
        self._resource = getattr(tracer, "resource", None)
        self._scope = getattr(tracer, "_instrumentation_scope", None)
        self._ids = getattr(tracer, "id_generator", None)
        self._sampler = getattr(tracer, "sampler", None)
        self._limits = getattr(tracer, "_span_limits", None)
        self._rule = _plain_rule(self._sampler)
        is_random = getattr(self._ids, "is_trace_id_random", None)
        self._random_ids = bool(is_random()) if callable(is_random) else False
        # With the SDK's RandomIdGenerator and SpanContext's known layout, ids and context are made
        # as they would make them, without their Python calls (as for leaf spans).
        self._fast_ids = type(self._ids) is RandomIdGenerator and _ctx.uses_tuple_layout
        self.enabled = None not in (self._processor, self._resource, self._ids, self._sampler, self._limits)

    def start(
        self, name: str, parent: Context, kind: SpanKind, attributes: dict[str, Any] | None
    ) -> trace.Span:
        """A started span (recording or not, as the sampler decides); ``attributes`` are trusted."""
        assert self._ids is not None and self._sampler is not None
        parent_ctx = _leaf.parent_in(parent)
        valid_parent = _ctx.is_valid(parent_ctx)
        if valid_parent:
            trace_id = _ctx.trace_id(parent_ctx)
        elif self._fast_ids:  # RandomIdGenerator.generate_trace_id(), inline
            trace_id = _getrandbits(128) or self._ids.generate_trace_id()
        else:
            trace_id = self._ids.generate_trace_id()
        parent_flags = _ctx.trace_flags(parent_ctx) if valid_parent else 0
        rule = self._rule
        if rule is not None:
            if rule == "parent":
                sampled = not valid_parent or bool(parent_flags & TraceFlags.SAMPLED)
            else:
                sampled = rule == "on"
            recording = sampled
            trace_state = _ctx.trace_state(parent_ctx) if valid_parent else None
        else:
            result = self._sampler.should_sample(parent, trace_id, name, kind, attributes, None)
            sampled = result.decision is Decision.RECORD_AND_SAMPLE
            recording = result.decision.is_recording()
            trace_state = result.trace_state
            if recording and result.attributes:  # a sampler may add attributes
                attributes = {**(attributes or {}), **result.attributes}
        flags = _FLAGS[
            sampled, bool(parent_flags & TraceFlags.RANDOM_TRACE_ID) if valid_parent else self._random_ids
        ]
        if self._fast_ids:  # what SpanContext() builds from ids it finds valid (these are)
            span_id = _getrandbits(64) or self._ids.generate_span_id()
            state = trace_state if trace_state is not None else DEFAULT_TRACE_STATE
            context = _new_context((trace_id, span_id, False, flags, state, True))
        else:
            context = SpanContext(
                trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=flags,
                trace_state=trace_state,
            )
        if not recording:
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
            if self._end is None and (not limits or len(self._events) < limits.max_events):
                self._events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not context.is_valid:
            return
        with _APP_LOCK:
            limits = self._owner._limits
            if self._end is None and (not limits or len(self._links) < limits.max_links):
                self._links.append(Link(context, BoundedAttributes(None, attributes)))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET never overrides.
        if self._end is not None or self._status.status_code is _OK:
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
                return
            self._end = end_time if end_time is not None else time.time_ns()
        owner = self._owner
        span = _leaf.readable_span(
            self._name,
            self._context,
            self._parent,
            owner._resource,
            self._attributes,
            self._events,
            self._links,
            self._kind,
            self._status,
            self._start,
            self._end,
            owner._scope,
        )
        _leaf.hand_to(owner._processor, span)

    def __repr__(self) -> str:
        return f"RequestSpan(name={self._name!r}, context={self._context!r})"


_leaf.register_plain_span_type(RequestSpan)  # a trace.Span: get_current_span() accepts it as it is
