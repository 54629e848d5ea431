"""What the httpx and requests instrumentations share: one CLIENT span and one measurement per call.

Each library module reads the method and URL of its own request type and patches its own
``send``; from there the work is the same and lives here:

- :func:`begin` (before the call): nothing under suppression; otherwise the span's context is
  decided and its W3C ``traceparent`` injected into the request headers.
- :func:`end` (after it): status code, ``error.type``, ERROR status and the exception event,
  then the span and the ``http.client.request.duration`` measurement.

Under a sampled parent (the usual case: a call made while handling a request) the span is a
leaf (:mod:`otelperf._sdk.leaf`): its SpanContext is minted before the call, so
the ``traceparent`` can name it, and the finished span goes to the span processors when the call
is over. Those processors get ``on_end`` without ``on_start`` for it. The downstream server's
span is its child through that header, as before. A root call or an unsampled parent takes the
API path (``tracer.start_span``). Either way the span is never the current span during the call,
so what runs inside ``send`` (event hooks, an in-process ASGI app) sees the caller's context.

The span carries the call's call site (``code.*``, :mod:`otelperf.instrumentation._callsite`)
unless ``call_sites`` is off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from otelperf import _names
from otelperf._runtime import guard as _internal
from otelperf._sdk.leaf import LeafSpans
from otelperf._sdk.suppression import SUPPRESS_HTTP_KEY, SUPPRESS_KEY
from otelperf.instrumentation._base import InstrumentContext
from otelperf.instrumentation._callsite import CallSites, Site
from otelperf.redaction.exceptions import exception_attributes, status_description

__all__ = ["Call", "ClientState", "begin", "end"]

SUPPRESS_KEYS = (SUPPRESS_KEY, SUPPRESS_HTTP_KEY)
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
DEFAULT_PORTS = {"http": 80, "https": 443}

# (raw method, full URL, scheme, host, port) of one request, read by the library's module.
RequestParts = tuple[str, str, str, str, int | None]


class ClientState:
    """The tracer, histogram and per-library details of one instrumented client library."""

    __slots__ = ("describe", "duration", "leaf", "redact", "sites", "tracer", "where")

    def __init__(
        self,
        ctx: InstrumentContext,
        where: str,
        describe: Callable[[Any], RequestParts],
        redact: Callable[[str], str],
    ) -> None:
        self.tracer: Tracer = ctx.tracer
        self.leaf = LeafSpans(ctx.tracer)
        self.duration: Histogram = ctx.meter.create_histogram(
            _names.METRIC_HTTP_CLIENT_DURATION,
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
        )
        self.where = where  # "httpx" / "requests": the place internal errors are reported under
        self.describe = describe
        self.redact = redact
        # Where calls are made from; None: call sites off.
        self.sites = CallSites() if getattr(ctx.settings, "call_sites", True) else None


class Call:
    """One traced ``send``: an API span, or what a leaf span needs when the call is over."""

    __slots__ = ("attrs", "context", "name", "parent", "span", "span_attrs", "start_ns", "started", "state")

    def __init__(self, state: ClientState, name: str, attrs: dict[str, Any]) -> None:
        self.state = state
        self.name = name
        self.attrs = attrs  # the metric's attributes, completed when the call ends
        self.span: Span | None = None  # the API path's span; None on the leaf path
        self.span_attrs: dict[str, Any] = {}  # leaf path: the span's attributes so far
        self.parent: SpanContext | None = None
        self.context: SpanContext | None = None
        self.start_ns = 0
        self.started = 0.0


def _span_attributes(
    state: ClientState, metric_attrs: dict[str, Any], url: str, raw_method: str, site: Site | None
) -> dict[str, Any]:
    attrs = dict(metric_attrs)
    attrs[_names.URL_FULL] = state.redact(url)
    attrs[_names.COMPONENT] = _names.COMPONENT_HTTP
    if metric_attrs[_names.HTTP_REQUEST_METHOD] == "_OTHER":
        attrs[_names.HTTP_REQUEST_METHOD_ORIGINAL] = raw_method
    if site is not None:
        attrs.update(site.attributes)
    return attrs


def _start(state: ClientState, request: Any) -> Call | None:
    if any(otel_context.get_value(key) for key in SUPPRESS_KEYS):
        return None
    raw_method, url, scheme, host, port = state.describe(request)
    method = raw_method if raw_method in KNOWN_METHODS else "_OTHER"
    metric_attrs: dict[str, Any] = {
        _names.HTTP_REQUEST_METHOD: method,
        _names.SERVER_ADDRESS: host,
        _names.URL_SCHEME: scheme,
    }
    if port is not None:
        metric_attrs[_names.SERVER_PORT] = port
    call = Call(state, method if method != "_OTHER" else "HTTP", metric_attrs)
    # The stack here is the call's: _start runs inside the patched send().
    site = None if state.sites is None else state.sites.site(host)
    parent = trace.get_current_span().get_span_context()
    leaf = state.leaf
    if parent.is_valid and parent.trace_flags.sampled and leaf.enabled:
        call.start_ns = time.time_ns()
        call.parent = parent
        call.context = leaf.context_for(parent)
        call.span_attrs = _span_attributes(state, metric_attrs, url, raw_method, site)
        injected: Span = NonRecordingSpan(call.context)
    else:
        span = call.span = injected = state.tracer.start_span(call.name, kind=SpanKind.CLIENT)
        if span.is_recording():
            span.set_attributes(_span_attributes(state, metric_attrs, url, raw_method, site))
    propagate.inject(request.headers, context=trace.set_span_in_context(injected))
    call.started = time.perf_counter()
    return call


def _exception_event(error: BaseException) -> Event:
    """The event ``Span.record_exception(error, escaped=True)`` adds, with sanitized text: the
    client's message names the URL, credentials and all (redaction/exceptions.py)."""
    return Event(_names.EXCEPTION_EVENT, exception_attributes(error, escaped=True), time.time_ns())


def _finish(call: Call, status: int | None, error: BaseException | None) -> None:
    state = call.state
    elapsed = time.perf_counter() - call.started
    attrs = call.attrs
    error_type: str | None = None
    if error is not None:
        error_type = type(error).__qualname__
    elif status is not None and status >= 500:
        error_type = str(status)
    if status is not None:
        attrs[_names.HTTP_RESPONSE_STATUS_CODE] = status
    if error_type is not None:
        attrs[_names.ERROR_TYPE] = error_type
    span = call.span
    if span is None:
        assert call.parent is not None and call.context is not None
        span_attrs = call.span_attrs
        if status is not None:
            span_attrs[_names.HTTP_RESPONSE_STATUS_CODE] = status
        if error_type is not None:
            span_attrs[_names.ERROR_TYPE] = error_type
        if error is not None:
            event = _exception_event(error)
            state.leaf.emit(
                call.name,
                SpanKind.CLIENT,
                call.parent,
                call.start_ns,
                time.time_ns(),
                span_attrs,
                (event,),
                True,
                call.context,
                Status(StatusCode.ERROR, status_description(error)),
            )
        else:
            state.leaf.emit(
                call.name,
                SpanKind.CLIENT,
                call.parent,
                call.start_ns,
                time.time_ns(),
                span_attrs,
                (),
                error_type is not None,
                call.context,
            )
    else:
        if span.is_recording():
            if status is not None:
                span.set_attribute(_names.HTTP_RESPONSE_STATUS_CODE, status)
            if error_type is not None:
                span.set_attribute(_names.ERROR_TYPE, error_type)
                description = None
                if error is not None:
                    description = status_description(error)
                    span.add_event(_names.EXCEPTION_EVENT, exception_attributes(error, escaped=True))
                span.set_status(Status(StatusCode.ERROR, description))
        span.end()
    state.duration.record(elapsed, attrs)


def begin(state: ClientState | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
    """Before ``send(request, ...)``: the call to trace, or None (not instrumented, suppressed, or failed)."""
    if state is None:
        return None
    try:
        return _start(state, args[0] if args else kwargs["request"])
    except Exception as exc:
        _internal.swallow(f"{state.where}.start", exc)
        return None


def end(call: Call, response: Any, error: BaseException | None) -> None:
    """After ``send``: ``response`` when it returned, ``error`` when it raised."""
    try:
        status = getattr(response, "status_code", None) if response is not None else None
        _finish(call, status, error)
    except Exception as exc:
        _internal.swallow(f"{call.state.where}.finish", exc)
