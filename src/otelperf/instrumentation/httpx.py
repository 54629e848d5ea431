"""CLIENT spans for httpx: ``httpx.Client.send`` and ``httpx.AsyncClient.send``.

One span per ``send`` call, named by the method (``"GET"``), with the W3C ``traceparent`` of
that span injected into the outgoing request, and one ``http.client.request.duration``
measurement. Redirects followed by httpx happen inside that one call, so they share its span.

Streaming responses (``client.stream(...)``, ``send(..., stream=True)``): the span ends when
``send`` returns, that is when the response headers have arrived; reading the body is not part
of it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import Histogram
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from otelperf import _internal, _names
from otelperf._redact import redact_url
from otelperf.instrumentation._base import InstrumentContext, Instrumentor

__all__ = ["INSTRUMENTOR"]

_SUPPRESS_KEYS = (otel_context._SUPPRESS_INSTRUMENTATION_KEY, otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY)
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _State:
    __slots__ = ("duration", "tracer")

    def __init__(self, tracer: Tracer, duration: Histogram) -> None:
        self.tracer = tracer
        self.duration = duration


_state: _State | None = None


class _Call:
    __slots__ = ("attrs", "span", "started")

    def __init__(self, span: Span, attrs: dict[str, Any], started: float) -> None:
        self.span = span
        self.attrs = attrs  # the metric's attributes, completed when the call ends
        self.started = started


def _internal_error(where: str, exc: Exception) -> None:
    _internal.record_internal_error(where, exc)
    if _internal._under_pytest():
        raise exc


def _start(state: _State, request: Any) -> _Call | None:
    if any(otel_context.get_value(key) for key in _SUPPRESS_KEYS):
        return None
    raw_method = str(request.method)
    method = raw_method if raw_method in _KNOWN_METHODS else "_OTHER"
    url = request.url
    scheme = url.scheme
    port = url.port or _DEFAULT_PORTS.get(scheme)
    metric_attrs: dict[str, Any] = {
        _names.HTTP_REQUEST_METHOD: method,
        _names.SERVER_ADDRESS: url.host,
        _names.URL_SCHEME: scheme,
    }
    if port is not None:
        metric_attrs[_names.SERVER_PORT] = port
    span = state.tracer.start_span(method if method != "_OTHER" else "HTTP", kind=SpanKind.CLIENT)
    if span.is_recording():
        attrs = dict(metric_attrs)
        attrs[_names.URL_FULL] = redact_url(str(url))
        attrs[_names.COMPONENT] = _names.COMPONENT_HTTP
        if method == "_OTHER":
            attrs[_names.HTTP_REQUEST_METHOD_ORIGINAL] = raw_method
        span.set_attributes(attrs)
    propagate.inject(request.headers, context=trace.set_span_in_context(span))
    return _Call(span, metric_attrs, time.perf_counter())


def _finish(state: _State, call: _Call, status: int | None, error: BaseException | None) -> None:
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
    if span.is_recording():
        if status is not None:
            span.set_attribute(_names.HTTP_RESPONSE_STATUS_CODE, status)
        if error_type is not None:
            span.set_attribute(_names.ERROR_TYPE, error_type)
            description = None
            if error is not None:
                description = f"{type(error).__name__}: {error}"
                span.record_exception(error, escaped=True)
            span.set_status(Status(StatusCode.ERROR, description))
    span.end()
    state.duration.record(elapsed, attrs)


def _begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[_State, _Call] | None:
    state = _state
    if state is None:
        return None
    try:
        request = args[0] if args else kwargs["request"]
        call = _start(state, request)
    except Exception as exc:
        _internal_error("httpx.start", exc)
        return None
    return None if call is None else (state, call)


def _end(begun: tuple[_State, _Call], response: Any, error: BaseException | None) -> None:
    try:
        status = getattr(response, "status_code", None) if response is not None else None
        _finish(begun[0], begun[1], status, error)
    except Exception as exc:
        _internal_error("httpx.finish", exc)


def _send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    begun = _begin(args, kwargs)
    if begun is None:
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        _end(begun, None, exc)
        raise
    _end(begun, response, None)
    return response


async def _send_async(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    begun = _begin(args, kwargs)
    if begun is None:
        return await wrapped(*args, **kwargs)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _end(begun, None, exc)
        raise
    _end(begun, response, None)
    return response


class HttpxInstrumentor(Instrumentor):
    """Instruments ``httpx.Client.send`` and ``httpx.AsyncClient.send``."""

    name = "httpx"

    def instrument(self, ctx: InstrumentContext) -> None:
        global _state
        import httpx

        _state = _State(
            ctx.tracer,
            ctx.meter.create_histogram(
                _names.METRIC_HTTP_CLIENT_DURATION,
                unit="s",
                description="Duration of HTTP client requests.",
                explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
            ),
        )
        for cls, wrapper in ((httpx.Client, _send), (httpx.AsyncClient, _send_async)):
            if not isinstance(vars(cls)["send"], wrapt.FunctionWrapper):
                wrapt.wrap_function_wrapper(cls, "send", wrapper)

    def uninstrument(self) -> None:
        global _state
        _state = None
        httpx = sys.modules.get("httpx")
        if httpx is None:
            return
        for cls in (httpx.Client, httpx.AsyncClient):
            current = vars(cls).get("send")
            if isinstance(current, wrapt.FunctionWrapper):
                cls.send = current.__wrapped__


INSTRUMENTOR = HttpxInstrumentor()
