"""Server spans for FastAPI/Starlette apps, exercised through a real app and httpx.ASGITransport."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from otelperf.instrumentation.asgi import OtelperfASGIMiddleware
from otelperf.testing import Capture, capture, stop_capture

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Boom(Exception):
    pass


def make_app(raised: list[BaseException] | None = None, **fastapi_kwargs: Any) -> FastAPI:
    app = FastAPI(**fastapi_kwargs)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/boom")
    def boom() -> None:
        exc = Boom("the app's own error")
        if raised is not None:
            raised.append(exc)
        raise exc

    @app.get("/child")
    def child() -> dict[str, str]:
        with trace.get_tracer("app").start_as_current_span("app work"):
            pass
        return {}

    api = APIRouter(prefix="/api")
    v1 = APIRouter(prefix="/v1")

    @v1.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    api.include_router(v1)
    app.include_router(api)

    sub = FastAPI()

    @sub.get("/deep/{name}")
    def deep(name: str) -> dict[str, str]:
        return {"name": name}

    app.mount("/sub", sub)
    app.mount(
        "/tenants/{tenant}",
        Starlette(routes=[Route("/files/{fid}", lambda request: PlainTextResponse("f"))]),
    )
    return app


async def call(
    app: Any, method: str, path: str, *, raise_app_exceptions: bool = True, **kw: Any
) -> httpx.Response:
    # The test client is httpx, itself instrumented: keep its CLIENT span (and the traceparent it
    # would inject) out of these server-side tests.
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test:8080") as client:
            return await client.request(method, path, **kw)
    finally:
        otel_context.detach(token)


def server_spans(cap: Capture) -> list[Any]:
    return [s for s in cap.spans if s.kind is SpanKind.SERVER]


@pytest.fixture
def app_before() -> FastAPI:
    return make_app()


@pytest.fixture
def cap_special(request: pytest.FixtureRequest) -> Iterator[Capture]:
    cap = capture(**request.param)
    try:
        yield cap
    finally:
        stop_capture(cap)


async def test_app_created_before_init_is_instrumented(app_before: FastAPI) -> None:
    cap = capture()
    try:
        response = await call(app_before, "GET", "/items/7")
        assert response.status_code == 200
        [span] = server_spans(cap)
        assert span.name == "GET /items/{item_id}"
    finally:
        stop_capture(cap)


async def test_server_span_attributes(otelperf_capture: Capture) -> None:
    app = make_app()
    await call(app, "GET", "/items/7?page=2", headers={"user-agent": "probe/1"})
    [span] = otelperf_capture.spans
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /items/{item_id}"
    assert span.status.status_code is StatusCode.UNSET
    attrs = dict(span.attributes or {})
    assert attrs == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/items/7",
        "url.query": "page=2",
        "network.protocol.version": "1.1",
        "client.address": "127.0.0.1",
        "user_agent.original": "probe/1",
        "server.address": "shop.test",
        "server.port": 8080,
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/orders/3", "GET /api/v1/orders/{order_id}"),  # nested APIRouter prefixes
        ("/sub/deep/x", "GET /sub/deep/{name}"),  # mounted FastAPI sub-app
        ("/tenants/acme/files/9", "GET /tenants/{tenant}/files/{fid}"),  # parametrised Starlette mount
        ("/nope/123", "GET"),  # no route: never the raw path
        ("/sub/nope", "GET"),  # no route inside a mount
    ],
)
async def test_span_is_named_by_route_template(otelperf_capture: Capture, path: str, name: str) -> None:
    app = make_app()
    await call(app, "GET", path)
    [span] = otelperf_capture.spans
    assert span.name == name
    route = (span.attributes or {}).get("http.route")
    assert route == (name.split(" ", 1)[1] if " " in name else None)


async def test_route_templates_stay_right_when_requests_repeat(otelperf_capture: Capture) -> None:
    """Templates of unmounted routes are remembered per route: every route, asked twice in turn."""
    app = make_app()
    expected = {
        "/items/7": "GET /items/{item_id}",
        "/api/v1/orders/3": "GET /api/v1/orders/{order_id}",
        "/sub/deep/x": "GET /sub/deep/{name}",
        "/tenants/acme/files/9": "GET /tenants/{tenant}/files/{fid}",
        "/tenants/other/files/1": "GET /tenants/{tenant}/files/{fid}",
        "/nope/123": "GET",
    }
    for _ in range(2):
        for path in expected:
            await call(app, "GET", path)
    assert [s.name for s in otelperf_capture.spans] == [*expected.values()] * 2


async def test_404_keeps_status_and_no_route(otelperf_capture: Capture) -> None:
    response = await call(make_app(), "GET", "/missing/42")
    assert response.status_code == 404
    [span] = otelperf_capture.spans
    assert span.name == "GET"
    assert (span.attributes or {})["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET


async def test_unknown_method_is_normalised(otelperf_capture: Capture) -> None:
    await call(make_app(), "PURGE", "/items/1")
    [span] = otelperf_capture.spans
    assert span.name == "HTTP /items/{item_id}"
    attrs = span.attributes or {}
    assert attrs["http.request.method"] == "_OTHER"
    assert attrs["http.request.method_original"] == "PURGE"


async def test_exception_is_reraised_unchanged_and_span_is_error(otelperf_capture: Capture) -> None:
    raised: list[BaseException] = []
    app = make_app(raised)
    with pytest.raises(Boom) as info:
        await call(app, "GET", "/boom")
    assert info.value is raised[0]
    [span] = otelperf_capture.spans
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    attrs = span.attributes or {}
    assert attrs["error.type"] == "Boom"
    assert attrs["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    [point] = [
        p
        for p in otelperf_capture.metric_points("http.server.request.duration")
        if p.attributes.get("http.route") == "/boom"
    ]
    assert point.attributes["error.type"] == "Boom"
    assert point.attributes["http.response.status_code"] == 500


async def test_no_message_spans_by_default(otelperf_capture: Capture) -> None:
    await call(make_app(), "POST", "/echo", content=b"x" * 100)
    assert [s.name for s in otelperf_capture.spans] == ["POST /echo"]


@pytest.mark.parametrize("cap_special", [{"asgi_message_spans": True}], indirect=True)
async def test_message_spans_when_asked_for(cap_special: Capture) -> None:
    await call(make_app(), "POST", "/echo", content=b"x" * 100)
    [server] = server_spans(cap_special)
    children = cap_special.children_of(server)
    names = sorted(s.name for s in children)
    assert "http receive" in names
    assert names.count("http send") == 2  # response start + body
    assert all(s.kind is SpanKind.INTERNAL for s in children)
    [start] = [s for s in children if (s.attributes or {}).get("asgi.event.type") == "http.response.start"]
    assert (start.attributes or {})["http.response.status_code"] == 200


async def test_incoming_traceparent_continues_the_trace(otelperf_capture: Capture) -> None:
    app = make_app()
    await call(app, "GET", "/child", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    [server] = server_spans(otelperf_capture)
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == PARENT_ID


async def test_app_spans_are_children_of_the_server_span(otelperf_capture: Capture) -> None:
    # The app's own tracer comes from the global provider; give it otelperf's for this check.
    provider = otelperf_capture.runtime.tracer_provider
    assert provider is not None
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())
        await PlainTextResponse("ok")(scope, receive, send)

    await call(OtelperfASGIMiddleware(app), "GET", "/x")
    [server] = server_spans(otelperf_capture)
    assert seen[0].span_id == server.context.span_id


async def test_headers_captured_only_when_configured(otelperf_capture: Capture) -> None:
    await call(make_app(), "GET", "/items/1", headers={"x-tenant": "acme"})
    [span] = otelperf_capture.spans
    assert not [k for k in (span.attributes or {}) if k.startswith("http.request.header.")]


@pytest.mark.parametrize("cap_special", [{"capture_request_headers": ("X-Tenant",)}], indirect=True)
async def test_configured_headers_are_captured(cap_special: Capture) -> None:
    await call(
        make_app(), "GET", "/items/1", headers=[("x-tenant", "acme"), ("x-tenant", "beta"), ("x-o", "n")]
    )
    [span] = cap_special.spans
    headers = {k: v for k, v in (span.attributes or {}).items() if k.startswith("http.request.header.")}
    assert headers == {"http.request.header.x-tenant": ("acme", "beta")}


async def test_secret_query_values_are_redacted(otelperf_capture: Capture) -> None:
    await call(make_app(), "GET", "/items/1?token=s3cr3t&page=2&X-Amz-Signature=abc")
    [span] = otelperf_capture.spans
    assert (span.attributes or {})["url.query"] == "token=REDACTED&page=2&X-Amz-Signature=REDACTED"


async def test_duration_metric_has_route(otelperf_capture: Capture) -> None:
    app = make_app()
    for _ in range(3):
        await call(app, "GET", "/items/5")
    [point] = otelperf_capture.metric_points("http.server.request.duration")
    assert point.count == 3
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "http.route": "/items/{item_id}",
        "http.response.status_code": 200,
    }


async def test_suppressed_context_produces_no_span(otelperf_capture: Capture) -> None:
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        response = await call(make_app(), "GET", "/items/1")
    finally:
        otel_context.detach(token)
    assert response.status_code == 200
    # (TestClient is httpx underneath: its own CLIENT span is not what this test is about.)
    assert server_spans(otelperf_capture) == []


async def test_explicit_middleware_and_auto_wrapper_give_one_span(otelperf_capture: Capture) -> None:
    await call(OtelperfASGIMiddleware(make_app()), "GET", "/sub/deep/y")
    [span] = otelperf_capture.spans
    assert span.name == "GET /sub/deep/{name}"


async def test_explicit_middleware_on_plain_asgi_app(otelperf_capture: Capture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("hi", status_code=503)(scope, receive, send)

    await call(OtelperfASGIMiddleware(app), "GET", "/anything/42")
    [span] = otelperf_capture.spans
    assert span.name == "GET"
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "503"


@pytest.mark.skipif(
    "telemetry" not in inspect.signature(FastAPI).parameters,
    reason="FastAPI < 0.165 has no OpenTelemetry telemetry of its own (the oldest-versions leg)",
)
async def test_fastapi_native_telemetry_is_switched_off_while_instrumented() -> None:
    native_exporter = InMemorySpanExporter()
    native_provider = TracerProvider()
    native_provider.add_span_processor(SimpleSpanProcessor(native_exporter))
    app = make_app(telemetry={"tracer_provider": native_provider})

    cap = capture()
    try:
        await call(app, "GET", "/items/1")
        assert [s.name for s in cap.spans] == ["GET /items/{item_id}"]
        assert native_exporter.get_finished_spans() == ()
    finally:
        stop_capture(cap)
    # Restored by uninstrument: FastAPI's own telemetry works again.
    await call(app, "GET", "/items/1")
    assert [s.name for s in native_exporter.get_finished_spans() if s.kind is SpanKind.SERVER] == [
        "GET /items/{item_id}"
    ]


async def test_uninstrument_restores_starlette_and_passes_through() -> None:
    import fastapi.applications

    original_starlette = vars(Starlette)["build_middleware_stack"]
    cap = capture()
    assert vars(Starlette)["build_middleware_stack"] is not original_starlette
    app = make_app()
    await call(app, "GET", "/items/1")
    assert len(cap.spans) == 1
    stop_capture(cap)

    assert vars(Starlette)["build_middleware_stack"] is original_starlette
    # (FastAPI < 0.113 has no build_middleware_stack of its own: Starlette's serves it.)
    assert (
        "FunctionWrapper"
        not in type(vars(fastapi.applications.FastAPI).get("build_middleware_stack")).__name__
    )
    response = await call(app, "GET", "/items/2")  # a stack built while instrumented: pass-through
    assert response.json() == {"id": 2}
    assert len(cap.spans) == 1
    fresh = make_app()
    await call(fresh, "GET", "/items/3")
    assert not isinstance(fresh.middleware_stack, OtelperfASGIMiddleware)


# Starlette 1.x asks for httpx2 under its TestClient; httpx still works, which is all we need here.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
async def test_websocket_and_lifespan_pass_through(otelperf_capture: Capture) -> None:
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    from starlette.routing import WebSocketRoute

    app = Starlette(routes=[WebSocketRoute("/ws", ws), Mount("/m", routes=[])])
    with TestClient(app) as client, client.websocket_connect("/ws") as conn:
        assert conn.receive_text() == "hello"
    # (TestClient is httpx underneath: its own CLIENT span is not what this test is about.)
    assert server_spans(otelperf_capture) == []
