"""Server spans for ASGI apps: FastAPI and Starlette automatically, any other framework by hand.

How FastAPI/Starlette apps are found: Starlette builds an app's middleware stack lazily, on the
first request, through ``build_middleware_stack``. otelperf patches that method (on ``Starlette``
and on ``FastAPI``, which overrides it) so the built stack is wrapped in
:class:`OtelperfASGIMiddleware` as its outermost layer. That catches apps created before
``otelperf.init()`` as well as after (as long as they had not served a request yet). After
``uninstrument`` the method is restored and wrappers already built pass requests straight through.

Any other ASGI framework::

    app = OtelperfASGIMiddleware(app)

Per request: one SERVER span named ``"GET /items/{item_id}"`` (the route *template*, never the
raw path; ``"GET"`` alone when no route matched; how it is found: :mod:`._asgi_routes`), W3C trace
context continued from the request headers, and one ``http.server.request.duration``
measurement. ASGI send/receive messages get no spans of their own unless
``asgi_message_spans=True``.

FastAPI >= 0.165 has its own OpenTelemetry telemetry, which switches itself on whenever a global
provider exists. On an app otelperf instruments, its request spans and metrics are switched off
(and switched back on by ``uninstrument``), so each request still yields exactly one server span.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from otelperf import _names
from otelperf._runtime import guard as _internal
from otelperf._sdk import context as _context
from otelperf._sdk.leaf import parent_in
from otelperf._sdk.request_span import RequestSpan, RequestSpans
from otelperf._sdk.suppression import SUPPRESS_KEY
from otelperf.instrumentation._asgi_request import (
    extract_parent,
    profile_begin,
    profile_end,
    request_attributes,
)
from otelperf.instrumentation._asgi_routes import RouteIndex, find_prefix
from otelperf.instrumentation._asgi_routes import route_template as _route_template
from otelperf.instrumentation._base import InstrumentContext, Instrumentor
from otelperf.pipeline.fast_histograms import FastHistogram
from otelperf.redaction.exceptions import exception_attributes, status_description

__all__ = ["INSTRUMENTOR", "OtelperfASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Marks a request that already has a server span, so nested wrappers (a mounted sub-app, or an
# explicit OtelperfASGIMiddleware around an auto-instrumented app) do not add a second one.
_SCOPE_KEY = "otelperf.request"
# Only the general key: "suppress_http_instrumentation" is about outgoing calls, and an in-process
# client (httpx.ASGITransport) may set it while the app serves the request.
_SUPPRESS_KEY = SUPPRESS_KEY
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
_MAX_CACHED_ROUTES = 4096
_MAX_CACHED_SERIES = 4096  # label sets; past that, computed per request (the histogram bounds them too)


class _State:
    """What the middleware needs while otelperf is running; replaced, never mutated (but for the
    cache of label sets it fills)."""

    __slots__ = (
        "capture_headers",
        "duration",
        "fast_duration",
        "message_spans",
        "request_spans",
        "series",
        "tracer",
    )

    def __init__(
        self, tracer: Tracer, duration: Histogram, capture: Sequence[str], message_spans: bool
    ) -> None:
        self.tracer = tracer
        spans = RequestSpans(tracer)
        self.request_spans = spans if spans.enabled else None  # None: not the SDK's tracer
        self.duration = duration
        # otelperf's own histogram: its points are keyed once per label set (method, scheme,
        # route, status, error type), not per request.
        self.fast_duration = duration if isinstance(duration, FastHistogram) else None
        self.series: dict[tuple[Any, ...], tuple[dict[str, Any], frozenset[tuple[str, Any]]]] = {}
        self.capture_headers = {name.lower().encode("latin-1"): name.lower() for name in capture}
        self.message_spans = message_spans


_state: _State | None = None  # set by INSTRUMENTOR.instrument, cleared by uninstrument
_fallback: tuple[object, _State] | None = None  # for explicit middleware when "fastapi" is not instrumented


def _explicit_state() -> _State | None:
    """State for a hand-added middleware: the instrumentor's, else built from the running runtime."""
    global _fallback
    if _state is not None:
        return _state
    from otelperf._runtime import setup as _setup

    runtime = _setup.current()
    if runtime is None or runtime.tracer is None or runtime.meter is None:
        return None
    if _fallback is None or _fallback[0] is not runtime:
        _fallback = (runtime, _build_state(runtime.tracer, runtime.meter, runtime.settings))
    return _fallback[1]


def _build_state(tracer: Tracer, meter: Any, settings: Any) -> _State:
    duration = meter.create_histogram(
        _names.METRIC_HTTP_SERVER_DURATION,
        unit="s",
        description="Duration of HTTP server requests.",
        explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
    )
    return _State(tracer, duration, settings.capture_request_headers, settings.asgi_message_spans)


class _HeadersGetter(Getter[Sequence[tuple[bytes, bytes]]]):
    """Reads ASGI ``scope["headers"]`` (lower-case byte names) without building a dict."""

    _keys: dict[str, bytes] = {}

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = self._keys.get(key)
        if wanted is None:
            wanted = key.lower().encode("latin-1")
            if len(self._keys) < 64:
                self._keys[key] = wanted
        values = [value.decode("latin-1") for name, value in carrier if name == wanted]
        return values or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [name.decode("latin-1") for name, _ in carrier]


_GETTER = _HeadersGetter()


class _Request:
    """Per-request bookkeeping, stored in the scope under ``_SCOPE_KEY``."""

    __slots__ = ("base_root_path", "method", "route_root", "scheme", "span", "span_context", "status")

    def __init__(self, span: trace.Span, span_context: Context, method: str, scheme: str, base: str) -> None:
        self.span = span
        self.span_context = span_context
        self.method = method
        self.scheme = scheme
        self.base_root_path = base
        self.status: int | None = None
        self.route_root: Any = None  # the Starlette app whose route tree resolves mount prefixes


class OtelperfASGIMiddleware:
    """ASGI middleware that gives every HTTP request one SERVER span and one duration measurement.

    FastAPI and Starlette apps are instrumented automatically by ``otelperf.init()``; add this by
    hand only for other ASGI frameworks::

        app = OtelperfASGIMiddleware(app)

    It records nothing until otelperf is running. WebSocket and lifespan traffic pass through.
    """

    _auto = False

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._owner: Any = None
        self._prefixes: dict[int, tuple[Any, str]] = {}
        self._index: RouteIndex | None = None  # the owner's routes by endpoint, made when first needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outer = scope.get(_SCOPE_KEY)
        if outer is not None:
            # Nested under another otelperf layer: lend it our route tree, add nothing.
            if isinstance(outer, _Request) and outer.route_root is None and self._owner is not None:
                outer.route_root = self
            await self.app(scope, receive, send)
            return
        state = _state if self._auto else _explicit_state()
        if state is None or _context.get_current().get(_SUPPRESS_KEY):
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        request: _Request | None = None
        token: object = None
        profiled: Any = None
        try:
            request = _start(state, scope)
            if self._owner is not None:
                request.route_root = self
            scope[_SCOPE_KEY] = request
            token = otel_context.attach(request.span_context)
            profiled = profile_begin(request.span)  # None unless the profiler follows this request
        except Exception as exc:
            _internal.swallow("asgi.start", exc)
        if request is None:
            await self.app(scope, receive, send)
            return

        req = request

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                req.status = message.get("status")
            await send(message)

        app_send: Send = send_status
        app_receive = receive
        if state.message_spans:
            app_receive, app_send = _message_span_wrappers(state.tracer, req, receive, send_status)

        error: BaseException | None = None
        try:
            await self.app(scope, app_receive, app_send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                if profiled is not None:
                    profile_end(profiled)  # before the span ends: the detector looks for it then
                otel_context.detach(token)  # type: ignore[arg-type]
                _finish(
                    state, req, scope=scope, route_prefix=self._route_prefix, error=error, started=started
                )
            except Exception as exc:
                _internal.swallow("asgi.finish", exc)

    def _route_prefix(self, request: _Request, route: Any, scope: Scope) -> str:
        """Mount prefixes between the app and ``route``, as templates (``/users/{uid}``)."""
        if scope.get("root_path", "") == request.base_root_path:
            return ""  # not mounted: the common case, no lookup
        root = request.route_root
        if isinstance(root, OtelperfASGIMiddleware) and root._owner is not None:
            holder, tree = root, root._owner
        else:  # a hand-added middleware alone: the outermost router, which Starlette put in the scope
            holder, tree = self, scope.get("router")
        cached = holder._prefixes.get(id(route))
        if cached is not None and cached[0] is route:
            return cached[1]
        found = find_prefix(getattr(tree, "routes", ()), route, "", 0)
        if found is not None:
            if len(holder._prefixes) < _MAX_CACHED_ROUTES:
                holder._prefixes[id(route)] = (route, found)  # keep route alive: id stays unique
            return found
        # Route in no tree we can read (a mounted app that does not show its routes): the matched
        # prefix, raw; its values only differ between requests under a parametrised mount.
        root_path: str = scope.get("root_path", "")
        return root_path[len(request.base_root_path) :].rstrip("/")


class _StarletteStack(OtelperfASGIMiddleware):
    """The wrapper put around a Starlette/FastAPI app's built middleware stack."""

    _auto = True

    def __init__(self, app: ASGIApp, owner: Any) -> None:
        super().__init__(app)
        self._owner = owner


def _start(state: _State, scope: Scope) -> _Request:
    headers = scope.get("headers") or ()
    parent = extract_parent(headers, _GETTER)
    raw_method: str = scope.get("method") or ""
    method = raw_method if raw_method in _KNOWN_METHODS else "_OTHER"
    scheme: str = scope.get("scheme") or "http"
    # Attributes go in at span start (one pass through the SDK's checks); an incoming
    # "not sampled" parent means the span will not record, so none are computed then.
    remote = parent_in(parent)
    attributes = None
    if not remote.is_valid or remote.trace_flags.sampled:
        attributes = request_attributes(
            state.capture_headers, scope, headers, method=method, raw=raw_method, scheme=scheme
        )
    name = method if method != "_OTHER" else "HTTP"
    if state.request_spans is not None:
        span = state.request_spans.start(name, parent, SpanKind.SERVER, attributes)
    else:
        span = state.tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    base = scope.get("root_path", "")
    return _Request(span, trace.set_span_in_context(span, parent), method, scheme, base)


def _finish(
    state: _State,
    req: _Request,
    *,
    scope: Scope,
    route_prefix: Callable[[_Request, Any, Scope], str],
    error: BaseException | None,
    started: float,
) -> None:
    elapsed = time.perf_counter() - started
    template = _route_template(req, scope, route_prefix)
    status = req.status
    if status is None and error is not None:
        status = 500  # what the server answers for an unhandled exception
    span = req.span
    error_type: str | None = None
    if error is not None:
        error_type = type(error).__qualname__
    elif status is not None and status >= 500:
        error_type = str(status)
    if span.is_recording():
        end_attributes: dict[str, Any] = {}
        if template is not None:
            span.update_name(f"{'HTTP' if req.method == '_OTHER' else req.method} {template}")
            end_attributes[_names.HTTP_ROUTE] = template
        if status is not None:
            end_attributes[_names.HTTP_RESPONSE_STATUS_CODE] = status
        if error_type is not None:
            end_attributes[_names.ERROR_TYPE] = error_type
        if type(span) is RequestSpan:  # not isinstance: trace.Span is an ABC, slow to check
            span.set_trusted_attributes(end_attributes)
        else:
            span.set_attributes(end_attributes)
        if error_type is not None:
            description = None
            if error is not None:
                description = status_description(error)  # sanitized: redaction/exceptions.py
                span.add_event(_names.EXCEPTION_EVENT, exception_attributes(error, escaped=True))
            span.set_status(Status(StatusCode.ERROR, description))
    span.end()
    labels = (req.method, req.scheme, template, status, error_type)
    series = state.series.get(labels)
    if series is None:
        attrs: dict[str, Any] = {_names.HTTP_REQUEST_METHOD: req.method, _names.URL_SCHEME: req.scheme}
        if template is not None:
            attrs[_names.HTTP_ROUTE] = template
        if status is not None:
            attrs[_names.HTTP_RESPONSE_STATUS_CODE] = status
        if error_type is not None:
            attrs[_names.ERROR_TYPE] = error_type
        if state.fast_duration is None:
            state.duration.record(elapsed, attrs, context=req.span_context)
            return
        series = (attrs, frozenset(attrs.items()))
        if len(state.series) < _MAX_CACHED_SERIES:
            state.series[labels] = series
    assert state.fast_duration is not None
    state.fast_duration.record_keyed(elapsed, series[1], series[0], span.get_span_context())


def _message_span_wrappers(
    tracer: Tracer, req: _Request, receive: Receive, send: Send
) -> tuple[Receive, Send]:
    """INTERNAL "http receive"/"http send" children of the server span (asgi_message_spans=True)."""

    async def traced_receive() -> Message:
        span = tracer.start_span("http receive", context=req.span_context, kind=SpanKind.INTERNAL)
        try:
            message = await receive()
            if span.is_recording():
                span.set_attribute(_names.ASGI_EVENT_TYPE, str(message.get("type")))
            return message
        finally:
            span.end()

    async def traced_send(message: Message) -> None:
        span = tracer.start_span("http send", context=req.span_context, kind=SpanKind.INTERNAL)
        try:
            if span.is_recording():
                span.set_attribute(_names.ASGI_EVENT_TYPE, str(message.get("type")))
                if message.get("type") == "http.response.start" and "status" in message:
                    span.set_attribute(_names.HTTP_RESPONSE_STATUS_CODE, message["status"])
            await send(message)
        finally:
            span.end()

    return traced_receive, traced_send


# --- patching Starlette/FastAPI ------------------------------------------------------------------

_NATIVE_KEYS = ("tracing", "metrics")
_wrapped_apps: weakref.WeakSet[Any] = weakref.WeakSet()
_native_saved: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_hook_registered = False


def _build_middleware_stack(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    stack = wrapped(*args, **kwargs)
    if _state is None or isinstance(stack, OtelperfASGIMiddleware):
        return stack  # a subclass calling super(): already wrapped once
    try:
        wrapper = _StarletteStack(stack, instance)
        _wrapped_apps.add(instance)
        _quiet_native_telemetry(instance)
        return wrapper
    except Exception as exc:
        _internal.swallow("asgi.build_middleware_stack", exc)
        return stack


def _quiet_native_telemetry(app: Any) -> None:
    """Switch off FastAPI's own request spans/metrics on an app otelperf already covers."""
    config = getattr(app, "_telemetry", None)
    if not isinstance(config, dict) or app in _native_saved:
        return
    _native_saved[app] = {key: config[key] for key in _NATIVE_KEYS if key in config}
    for key in _NATIVE_KEYS:
        if key in config:
            config[key] = False


def _restore_native_telemetry() -> None:
    for app, saved in list(_native_saved.items()):
        config = getattr(app, "_telemetry", None)
        if isinstance(config, dict):
            config.update(saved)
    _native_saved.clear()


def _patch(cls: type) -> None:
    if "build_middleware_stack" in vars(cls) and not isinstance(
        vars(cls)["build_middleware_stack"], wrapt.FunctionWrapper
    ):
        wrapt.wrap_function_wrapper(cls, "build_middleware_stack", _build_middleware_stack)


def _unpatch(cls: type) -> None:
    current = vars(cls).get("build_middleware_stack")
    if isinstance(current, wrapt.FunctionWrapper):
        cls.build_middleware_stack = current.__wrapped__  # type: ignore[attr-defined]


def _on_fastapi_import(module: Any) -> None:
    # FastAPI overrides build_middleware_stack without calling Starlette's, so it needs its own
    # patch; done when fastapi is imported, so init() does not import it for apps that don't use it.
    if _state is not None:
        _patch(module.FastAPI)


class ASGIInstrumentor(Instrumentor):
    """Instruments every Starlette/FastAPI app (name ``"fastapi"``)."""

    name = "fastapi"

    def instrument(self, ctx: InstrumentContext) -> None:
        global _state, _hook_registered
        from starlette.applications import Starlette

        _state = _build_state(ctx.tracer, ctx.meter, ctx.settings)
        _patch(Starlette)
        if not _hook_registered:
            wrapt.register_post_import_hook(_on_fastapi_import, "fastapi.applications")
            _hook_registered = True
        elif "fastapi.applications" in sys.modules:
            _on_fastapi_import(sys.modules["fastapi.applications"])
        for app in list(_wrapped_apps):  # stacks built in an earlier instrument cycle
            _quiet_native_telemetry(app)

    def uninstrument(self) -> None:
        global _state, _fallback
        _state = None
        _fallback = None
        for module_name, cls_name in (
            ("starlette.applications", "Starlette"),
            ("fastapi.applications", "FastAPI"),
        ):
            module = sys.modules.get(module_name)
            if module is not None:
                _unpatch(getattr(module, cls_name))
        _restore_native_telemetry()


INSTRUMENTOR = ASGIInstrumentor()
