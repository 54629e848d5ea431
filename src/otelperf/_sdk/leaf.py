"""Leaf spans written in one step, for operations that are over before we describe them.

A SQL statement, a Redis command or a cache lookup has no children and is complete by the time
otelperf builds its span. The SDK's ``start_span``/``end`` path is made for spans that live and
change: it samples, takes a lock per span, re-validates every attribute and keeps mutable state,
which costs more than the statement's own bookkeeping. Here the finished span is built with
``ReadableSpan``'s public constructor (the SDK's own type for ended spans) and handed to the
provider's span processors' ``on_end``, exactly where ``Span.end()`` would hand it.

This is only done while :class:`~otelperf._sdk.fast_paths.SpanPathGate` finds it equivalent to the
SDK's path (no processor that needs ``on_start``, default limits, a sampler whose answer for a child
of a sampled parent is "sampled", the SDK's id generator, an enabled tracer). Otherwise
:meth:`LeafSpans.emit` takes the SDK's path: ``start_span`` with the operation's start time, then
``end`` with its end time, so processors, limits, samplers and configurators all apply.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SynchronousMultiSpanProcessor
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    get_current_span,
    set_span_in_context,
)

from otelperf._sdk import span_context as _ctx
from otelperf._sdk.context import get_current as _get_current_context
from otelperf._sdk.fast_paths import SpanPathGate, env_forced_off

UNSET = Status(StatusCode.UNSET)  # shared by every span otelperf writes without an error
_ERROR = Status(StatusCode.ERROR)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
# A child carries W3C level-2 "random trace id" when its parent does, as the SDK's spans do.
# W3C level-2 "random trace id" (API 1.42+; older APIs have no such flag and never set it).
_RANDOM: int = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | _RANDOM)
_getrandbits = random.getrandbits  # what RandomIdGenerator calls
_new_context = functools.partial(tuple.__new__, SpanContext)  # SpanContext's own last step
# Ids and contexts made as RandomIdGenerator and SpanContext() make them, without their Python calls.
_FAST_IDS = _ctx.uses_tuple_layout and not env_forced_off()


# --- the current span's context, read without the API's ABC check ---------------------------------

try:  # the key under which the API stores the current span (private, hence the fallback)
    from opentelemetry.trace.propagation import _SPAN_KEY as _API_SPAN_KEY

    _SPAN_KEY: str | None = None if env_forced_off() else _API_SPAN_KEY
except ImportError:  # pragma: no cover - an API that moved it: get_current_span() every time
    _SPAN_KEY = None

# Span classes get_current_span() accepts as they are (it checks isinstance(span, Span), an ABC
# check that is a Python call on every statement and lookup) and whose get_span_context() returns
# their ``_context`` attribute, read here without the call: the SDK's, the API's non-recording span
# (each checked on a probe at import) and otelperf's request span (registered by _request_span).


def _keeps_context(span_type: Any, make: Any) -> bool:
    try:
        probe_context = SpanContext(0x1, 0x2, is_remote=False)
        probe = make(probe_context)
        return type(probe) is span_type and probe._context is probe.get_span_context() is probe_context
    except Exception:
        return False


_PLAIN_SPAN_TYPES: set[type] = {
    span_type
    for span_type, make in (
        (NonRecordingSpan, NonRecordingSpan),
        (getattr(sdk_trace, "_Span", None), lambda ctx: sdk_trace._Span("probe", ctx)),
    )
    if isinstance(span_type, type) and _keeps_context(span_type, make)
}


def register_plain_span_type(span_type: type) -> None:
    """Let :func:`parent_in` read the context of spans of ``span_type`` (a subclass of ``trace.Span``
    whose ``get_span_context()`` returns its ``_context`` attribute) without calling it."""
    if not issubclass(span_type, trace.Span):
        raise TypeError(f"{span_type.__name__} is not a trace.Span")
    _PLAIN_SPAN_TYPES.add(span_type)


def parent_in(context: Context | None) -> SpanContext:
    """``get_current_span(context).get_span_context()``: the current span's when ``context`` is None."""
    if context is None:
        context = _get_current_context()
    if _SPAN_KEY is not None:
        span = context.get(_SPAN_KEY)
        if span is None:  # no current span: what get_current_span() gives then
            return INVALID_SPAN_CONTEXT
        if type(span) in _PLAIN_SPAN_TYPES:
            return span._context  # type: ignore[no-any-return,attr-defined]
    return get_current_span(context).get_span_context()


# --- ReadableSpan, built by its public constructor ------------------------------------------------

_READABLE_SPAN_PARAMETERS = (
    "name", "context", "parent", "resource", "attributes", "events", "links", "kind",
    "instrumentation_info", "status", "start_time", "end_time", "instrumentation_scope",
)  # fmt: skip


def _positional_readable_span() -> bool:
    """Whether ReadableSpan's constructor takes its arguments in the order above (checked once:
    13 keyword arguments cost the call noticeably more than positional ones)."""
    try:
        names = tuple(inspect.signature(ReadableSpan.__init__).parameters)[1:]
    except (TypeError, ValueError):
        return False
    return names == _READABLE_SPAN_PARAMETERS


_POSITIONAL = _positional_readable_span()


def readable_span(  # noqa: PLR0917 - ReadableSpan's own arguments, in its order
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    resource: Any,
    attributes: Any,
    events: Sequence[Event],
    links: Sequence[Any],
    kind: SpanKind,
    status: Status,
    start_time: int,
    end_time: int,
    scope: Any,
) -> ReadableSpan:
    """A finished ReadableSpan, from its public constructor."""
    if _POSITIONAL:
        return ReadableSpan(
            name, context, parent, resource, attributes, events, links, kind, None, status, start_time,
            end_time, scope,
        )  # fmt: skip
    return ReadableSpan(
        name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=kind,
        status=status,
        start_time=start_time,
        end_time=end_time,
        instrumentation_scope=scope,
    )


def hand_to(processor: Any, span: ReadableSpan) -> None:
    """``processor.on_end(span)``; the SDK's SynchronousMultiSpanProcessor's loop done inline (its
    tuple is read each time: processors can be added while spans are written)."""
    if type(processor) is SynchronousMultiSpanProcessor:
        for each in processor._span_processors:
            each.on_end(span)
    else:
        processor.on_end(span)


def _child_flags(parent: SpanContext) -> TraceFlags:
    return _SAMPLED_RANDOM if _ctx.trace_flags(parent) & _RANDOM else _SAMPLED


class LeafSpans:
    """Emits complete, childless spans under a sampled parent: built directly while the gate is
    open, through the SDK's ``start_span``/``end`` otherwise."""

    __slots__ = ("_gate", "_ids", "_processor", "_resource", "_scope", "_tracer")

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._gate = SpanPathGate(tracer)
        self._processor = getattr(tracer, "span_processor", None)
        self._resource = getattr(tracer, "resource", None)
        self._scope = getattr(tracer, "_instrumentation_scope", None)
        self._ids = getattr(tracer, "id_generator", None)

    @property
    def enabled(self) -> bool:
        """Whether a leaf span built here now is what the SDK's path would produce."""
        return self._gate.open()

    @property
    def reason(self) -> str | None:
        """Why the fast path is off (None while it is on)."""
        self._gate.open()
        return self._gate.reason

    def new_span_id(self) -> int:
        assert self._ids is not None
        span_id: int = self._ids.generate_span_id()
        return span_id

    def context_for(self, parent: SpanContext, span_id: int | None = None) -> SpanContext:
        """The SpanContext of a child of ``parent`` (to inject before the operation runs)."""
        return SpanContext(
            _ctx.trace_id(parent),
            span_id if span_id is not None else self.new_span_id(),
            is_remote=False,
            trace_flags=_child_flags(parent),
            trace_state=_ctx.trace_state(parent),
        )

    def emit(  # noqa: PLR0917 - one call site per instrumentation, all positional for speed
        self,
        name: str,
        kind: SpanKind,
        parent: SpanContext,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Any],
        events: Sequence[Event] = (),
        error: bool = False,
        context: SpanContext | None = None,
        status: Status | None = None,
    ) -> None:
        """The finished span of an operation under ``parent``. ``context``: one minted before the
        operation by :meth:`context_for` (it was injected, so the span must carry it)."""
        if status is None:
            status = _ERROR if error else UNSET
        if context is None:
            if not self._gate.open():
                self._emit_through_sdk(name, kind, parent, start_ns, end_ns, attributes, events, status)
                return
            if _FAST_IDS:
                # What RandomIdGenerator and SpanContext() would do, without their Python calls:
                # a non-zero random 64-bit id, and a context valid as its parent is (the gate
                # admits only RandomIdGenerator; SpanContext's tuple layout is checked at import).
                span_id = _getrandbits(64) or self.new_span_id()
                flags = _SAMPLED_RANDOM if parent[3] & _RANDOM else _SAMPLED
                context = _new_context((parent[0], span_id, False, flags, parent[4], True))
            else:
                context = self.context_for(parent)
        if _POSITIONAL:  # readable_span(), inline: this runs once per statement and lookup
            span = ReadableSpan(
                name, context, parent, self._resource, attributes, events, (), kind, None, status, start_ns,
                end_ns, self._scope,
            )  # fmt: skip
        else:
            span = readable_span(
                name, context, parent, self._resource, attributes, events, (), kind, status, start_ns, end_ns,
                self._scope,
            )  # fmt: skip
        processor = self._processor
        if type(processor) is SynchronousMultiSpanProcessor:  # hand_to(), inline
            for each in processor._span_processors:
                each.on_end(span)
        else:
            hand_to(processor, span)

    def _emit_through_sdk(  # noqa: PLR0917 - emit()'s own arguments
        self,
        name: str,
        kind: SpanKind,
        parent: SpanContext,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Any],
        events: Sequence[Event],
        status: Status,
    ) -> None:
        """The SDK's path: its sampler, limits, processors' on_start and on_end, configurator."""
        span = self._tracer.start_span(
            name,
            context=set_span_in_context(NonRecordingSpan(parent)),
            kind=kind,
            attributes=attributes,
            start_time=start_ns,
        )
        for event in events:
            span.add_event(event.name, event.attributes, event.timestamp)
        if status.status_code is not StatusCode.UNSET:
            span.set_status(status)
        span.end(end_time=end_ns)
