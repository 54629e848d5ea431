"""Leaf spans written in one step, for operations that are over before we describe them.

A SQL statement, a Redis command or a cache lookup has no children and is complete by the time
otelperf builds its span. The SDK's ``start_span``/``end`` path is made for spans that live and
change: it samples, takes a lock per span, re-validates every attribute and keeps mutable state,
which costs more than the statement's own bookkeeping. Here the finished span is built directly
as a ``ReadableSpan`` (the SDK's own type for ended spans) and handed to the provider's span
processors' ``on_end``, exactly where ``Span.end()`` would hand it.

Rules that keep this equivalent to the SDK path:
- only with a ``ParentBased`` sampler (the default) and for spans with a valid parent: the child
  follows the parent's sampling decision as that sampler would; a root operation, or any span under
  another sampler, takes the normal path through the sampler;
- attributes are built by otelperf from known types and bounded sizes, so they need no cleaning;
- span processors see ``on_end`` but not ``on_start`` for these spans (documented).
When the tracer is not the SDK's, :attr:`LeafSpans.enabled` is False and callers use the API.
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
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased
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
)

from otelperf._sdk import span_context as _ctx
from otelperf._sdk.context import get_current as _get_current_context

UNSET = Status(StatusCode.UNSET)  # shared by every span otelperf writes without an error
_ERROR = Status(StatusCode.ERROR)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
# A child carries W3C level-2 "random trace id" when its parent does, as the SDK's spans do.
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_RANDOM = TraceFlags.RANDOM_TRACE_ID
_getrandbits = random.getrandbits  # what RandomIdGenerator calls
_new_context = functools.partial(tuple.__new__, SpanContext)  # SpanContext's own last step


# --- the current span's context, read without the API's ABC check ---------------------------------

try:  # the key under which the API stores the current span (private, hence the fallback)
    from opentelemetry.trace.propagation import _SPAN_KEY as _API_SPAN_KEY

    _SPAN_KEY: str | None = _API_SPAN_KEY
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


# --- ReadableSpan, built with positional arguments -------------------------------------------------

_READABLE_SPAN_PARAMETERS = (
    "name", "context", "parent", "resource", "attributes", "events", "links", "kind",
    "instrumentation_info", "status", "start_time", "end_time", "instrumentation_scope",
)  # fmt: skip


def _positional_readable_span() -> bool:
    """Whether ReadableSpan's constructor takes its arguments in the order above (checked once:
    13 keyword arguments cost the call about as much as the span's own setup)."""
    try:
        names = tuple(inspect.signature(ReadableSpan.__init__).parameters)[1:]
    except (TypeError, ValueError):
        return False
    return names == _READABLE_SPAN_PARAMETERS


_POSITIONAL = _positional_readable_span()
_new_object = object.__new__


def _init_only_stores() -> bool:
    """Whether ReadableSpan's constructor only stores each argument in ``_<parameter>`` (checked
    once, on a probe with a distinct object per argument). Then a span is built by those stores on
    a new object, without the call: the constructor's frame costs about a third of the span."""
    if not _POSITIONAL or ReadableSpan.__new__ is not object.__new__:
        return False
    try:
        arguments: list[Any] = [object() for _ in _READABLE_SPAN_PARAMETERS]
        stored = vars(ReadableSpan(*arguments))
    except Exception:
        return False
    return stored == {
        f"_{name}": value for name, value in zip(_READABLE_SPAN_PARAMETERS, arguments, strict=True)
    }


_STORES = _init_only_stores()


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
    """A finished ReadableSpan, built as its constructor would (checked at import) or by it."""
    if _STORES and resource is not None:  # the constructor would make a resource of None
        span: ReadableSpan = _new_object(ReadableSpan)
        span._name = name
        span._context = context
        span._kind = kind
        span._instrumentation_info = None
        span._instrumentation_scope = scope
        span._parent = parent
        span._start_time = start_time
        span._end_time = end_time
        span._attributes = attributes
        span._events = events
        span._links = links
        span._resource = resource
        span._status = status
        return span
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
    return _SAMPLED_RANDOM if parent.trace_flags & TraceFlags.RANDOM_TRACE_ID else _SAMPLED


class LeafSpans:
    """Emits complete, childless spans under a sampled parent straight to the span processors."""

    __slots__ = ("_fast_ids", "_ids", "_multi", "_processor", "_resource", "_scope", "_tracer", "enabled")

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._processor = getattr(tracer, "span_processor", None)
        self._resource = getattr(tracer, "resource", None)
        self._scope = getattr(tracer, "_instrumentation_scope", None)
        self._ids = getattr(tracer, "id_generator", None)
        # The SDK's RandomIdGenerator draws from `random`; with it (the default) and SpanContext's
        # known tuple layout, a child's context is built without a Python call.
        self._fast_ids = type(self._ids) is RandomIdGenerator and _ctx.uses_tuple_layout
        # The SDK's SynchronousMultiSpanProcessor only calls each processor's on_end in turn.
        self._multi = type(self._processor) is SynchronousMultiSpanProcessor and isinstance(
            getattr(self._processor, "_span_processors", None), tuple
        )
        # A child that simply follows its parent's decision is what the ParentBased samplers do
        # (otelperf's default); with any other sampler the SDK path decides, span by span.
        follows_parent = isinstance(getattr(tracer, "sampler", None), ParentBased)
        self.enabled = (
            follows_parent
            and None not in (self._processor, self._resource, self._ids)
            and hasattr(self._processor, "on_end")
        )

    def new_span_id(self) -> int:
        assert self._ids is not None
        span_id: int = self._ids.generate_span_id()
        return span_id

    def context_for(self, parent: SpanContext, span_id: int | None = None) -> SpanContext:
        """The SpanContext of a child of ``parent`` (to inject before the operation runs)."""
        return SpanContext(
            parent.trace_id,
            span_id if span_id is not None else self.new_span_id(),
            is_remote=False,
            trace_flags=_child_flags(parent),
            trace_state=parent.trace_state,
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
    ) -> None:
        if context is None:  # context_for(), inline: this runs once per statement
            if self._fast_ids:
                # What RandomIdGenerator and SpanContext() would do, without their Python calls:
                # a non-zero random 64-bit id, and a context valid as its parent is. The parent is
                # read by index: _fast_ids holds only with SpanContext's checked tuple layout.
                span_id = _getrandbits(64) or self.new_span_id()
                flags = _SAMPLED_RANDOM if parent[3] & _RANDOM else _SAMPLED
                context = _new_context((parent[0], span_id, False, flags, parent[4], True))
            else:
                flags = _SAMPLED_RANDOM if _ctx.trace_flags(parent) & _RANDOM else _SAMPLED
                context = SpanContext(
                    _ctx.trace_id(parent),
                    self.new_span_id(),
                    is_remote=False,
                    trace_flags=flags,
                    trace_state=_ctx.trace_state(parent),
                )
        status = _ERROR if error else UNSET
        # readable_span() and hand_to(), inline: this runs once per statement and lookup.
        if _STORES:  # the resource is never None here (see enabled)
            span: ReadableSpan = _new_object(ReadableSpan)
            span._name = name
            span._context = context
            span._kind = kind
            span._instrumentation_info = None
            span._instrumentation_scope = self._scope
            span._parent = parent
            span._start_time = start_ns
            span._end_time = end_ns
            span._attributes = attributes
            span._events = events
            span._links = ()
            span._resource = self._resource  # type: ignore[assignment]
            span._status = status
        elif _POSITIONAL:
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
        if self._multi:
            for each in processor._span_processors:  # type: ignore[union-attr]
                each.on_end(span)
        else:
            hand_to(processor, span)
