"""Every route Starlette knows names its request: a table of apps x routes, on every supported
Starlette/FastAPI (``make test`` runs this file on the newest and on the oldest supported versions).

What is asserted is what a user reads in the trace and on the duration metric: the span name
(``"GET /openapi.json"``; the method alone when no route matched) and ``http.route``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import starlette
from fastapi import APIRouter, FastAPI
from opentelemetry import context as otel_context
from packaging.version import Version
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Match, Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from otelperf._runtime import guard as _internal
from otelperf.instrumentation._asgi_routes import RouteIndex
from otelperf.instrumentation.asgi import OtelperfASGIMiddleware
from otelperf.testing import Capture, capture, stop_capture

# Starlette >= 0.33 expects an ASGI server's root_path to be part of scope["path"] too (as uvicorn
# sends it); older ones expect the path without it.
PATH_HAS_ROOT = Version(starlette.__version__) >= Version("0.33")


def text(request: Request) -> Response:
    return PlainTextResponse(request.url.path)


def included(request: Request) -> Response:
    return PlainTextResponse("included")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def legacy_app() -> Starlette:
    """A Starlette app with routes of its own and a nested, parametrised mount."""
    return Starlette(
        routes=[
            Route("/users/{uid}", text),
            Mount("/nested/{group}", routes=[Route("/leaf/{lid:int}", text)]),
        ]
    )


def fastapi_app(static_dir: Path, **kwargs: Any) -> FastAPI:
    app = FastAPI(**kwargs)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    api = APIRouter(prefix="/api")

    @api.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    app.include_router(api)
    starlette_routes = APIRouter()
    starlette_routes.add_route("/sr/{x}", included)  # a Starlette route in an included router
    app.include_router(starlette_routes, prefix="/inc")
    app.add_route("/plain/{name}", text)
    app.add_route("/again/{name}", text)  # the same endpoint on a second route
    app.add_route("/leaf/{x}", text)  # and on one whose path is also a mounted route's, below it
    app.add_api_websocket_route("/ws/{room}", ws_echo)

    sub = FastAPI()

    @sub.get("/deep/{name}")
    def deep(name: str) -> dict[str, str]:
        return {"name": name}

    app.mount("/sub", sub)

    tenant = FastAPI()
    things = APIRouter(prefix="/v1")

    @things.get("/things/{tid}")
    def thing(tid: int) -> dict[str, int]:
        return {"id": tid}

    tenant.include_router(things)
    app.mount("/t/{tenant}", tenant)  # a parametrised mount of an app with an included router
    app.mount("/legacy", legacy_app())
    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    app.host("api.example.test", Router(routes=[Route("/hosted/{x}", text)]))
    return app


def starlette_app(static_dir: Path) -> Starlette:
    """No FastAPI at all."""
    return Starlette(
        routes=[
            Route("/hello/{name}", text),
            WebSocketRoute("/ws", ws_echo),
            Mount("/legacy", app=legacy_app()),
            Mount("/static", app=StaticFiles(directory=static_dir)),
            Host("api.example.test", app=Router(routes=[Route("/hosted/{x}", text)])),
        ]
    )


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("static")
    (path / "hello.txt").write_text("hello")
    return path


async def get(app: Any, path: str, *, host: str = "shop.test", root_path: str = "") -> httpx.Response:
    # The test client is httpx, itself instrumented: keep its CLIENT span out of these tests.
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        transport = httpx.ASGITransport(app=app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            return await client.get(path)
    finally:
        otel_context.detach(token)


def seen(cap: Capture) -> list[tuple[str, Any, Any]]:
    """(span name, http.route, status) of every span, as a trace viewer shows them."""
    return [
        (
            s.name,
            (s.attributes or {}).get("http.route"),
            (s.attributes or {}).get("http.response.status_code"),
        )
        for s in cap.spans
    ]


# (path, host, status, span name); the http.route is the name without its method.
FASTAPI_ROUTES = [
    ("/items/7", "shop.test", 200, "GET /items/{item_id}"),
    ("/api/orders/3", "shop.test", 200, "GET /api/orders/{order_id}"),
    ("/openapi.json", "shop.test", 200, "GET /openapi.json"),
    ("/docs", "shop.test", 200, "GET /docs"),
    ("/docs/oauth2-redirect", "shop.test", 200, "GET /docs/oauth2-redirect"),
    ("/redoc", "shop.test", 200, "GET /redoc"),
    ("/plain/bob", "shop.test", 200, "GET /plain/{name}"),
    ("/inc/sr/1", "shop.test", 200, "GET /inc/sr/{x}"),
    ("/again/bob", "shop.test", 200, "GET /again/{name}"),
    ("/leaf/3", "shop.test", 200, "GET /leaf/{x}"),
    ("/sub/deep/x", "shop.test", 200, "GET /sub/deep/{name}"),
    ("/t/acme/v1/things/3", "shop.test", 200, "GET /t/{tenant}/v1/things/{tid}"),
    ("/t/acme/openapi.json", "shop.test", 200, "GET /t/{tenant}/openapi.json"),
    ("/legacy/users/5", "shop.test", 200, "GET /legacy/users/{uid}"),
    ("/legacy/nested/g1/leaf/2", "shop.test", 200, "GET /legacy/nested/{group}/leaf/{lid}"),
    ("/static/hello.txt", "shop.test", 200, "GET /static/{path}"),
    ("/static/missing.txt", "shop.test", 404, "GET /static/{path}"),  # the mount answered
    ("/hosted/1", "api.example.test", 200, "GET /hosted/{x}"),
    ("/nope/123", "shop.test", 404, "GET"),  # no route: never the raw path
    ("/legacy/nope", "shop.test", 404, "GET"),  # inside a mount, no route
    ("/sub/nope", "shop.test", 404, "GET"),
    ("/hosted/1", "other.test", 404, "GET"),  # the Host route is for another host
    ("/ws/lobby", "shop.test", 404, "GET"),  # a websocket route does not answer HTTP
]

STARLETTE_ROUTES = [
    ("/hello/ann", "shop.test", 200, "GET /hello/{name}"),
    ("/legacy/users/5", "shop.test", 200, "GET /legacy/users/{uid}"),
    ("/legacy/nested/g1/leaf/2", "shop.test", 200, "GET /legacy/nested/{group}/leaf/{lid}"),
    ("/static/hello.txt", "shop.test", 200, "GET /static/{path}"),
    ("/hosted/1", "api.example.test", 200, "GET /hosted/{x}"),
    ("/nope", "shop.test", 404, "GET"),
    ("/legacy/nope", "shop.test", 404, "GET"),
]


def route_of(name: str) -> str | None:
    return name.split(" ", 1)[1] if " " in name else None


@pytest.mark.parametrize("case", FASTAPI_ROUTES, ids=lambda case: f"{case[1]}{case[0]}")
async def test_fastapi_app_routes(
    otelperf_capture: Capture, static_dir: Path, case: tuple[str, str, int, str]
) -> None:
    path, host, status, name = case
    response = await get(fastapi_app(static_dir), path, host=host)
    assert response.status_code == status
    assert seen(otelperf_capture) == [(name, route_of(name), status)]


@pytest.mark.parametrize("case", STARLETTE_ROUTES, ids=lambda case: f"{case[1]}{case[0]}")
async def test_plain_starlette_app_routes(
    otelperf_capture: Capture, static_dir: Path, case: tuple[str, str, int, str]
) -> None:
    path, host, status, name = case
    response = await get(starlette_app(static_dir), path, host=host)
    assert response.status_code == status
    assert seen(otelperf_capture) == [(name, route_of(name), status)]


async def test_every_route_twice_in_turn_on_one_app(otelperf_capture: Capture, static_dir: Path) -> None:
    """What is remembered per route or endpoint never hands one route's name to another."""
    app = fastapi_app(static_dir)
    for _ in range(2):
        for path, host, _status, _name in FASTAPI_ROUTES:
            await get(app, path, host=host)
    names = [name for *_, name in FASTAPI_ROUTES]
    assert [s.name for s in otelperf_capture.spans] == names * 2
    points = otelperf_capture.metric_points("http.server.request.duration")
    by_route = {
        (p.attributes.get("http.route"), p.attributes["http.response.status_code"]): p.count for p in points
    }
    assert by_route[("/openapi.json", 200)] == 2
    assert by_route[("/static/{path}", 404)] == 2
    assert by_route[("/legacy/nested/{group}/leaf/{lid}", 200)] == 2
    assert by_route[(None, 404)] == 2 * len([n for n in names if n == "GET"])


async def test_route_added_after_the_first_request_is_named(otelperf_capture: Capture) -> None:
    app = Starlette(routes=[Route("/first", text)])
    await get(app, "/first")
    app.add_route("/later/{n}", text)
    app.router.routes.append(Mount("/mounted-later", routes=[Route("/x/{y}", text)]))
    await get(app, "/later/1")
    await get(app, "/mounted-later/x/2")
    assert [s.name for s in otelperf_capture.spans] == [
        "GET /first",
        "GET /later/{n}",
        "GET /mounted-later/x/{y}",
    ]


@pytest.mark.parametrize("app_kind", ["fastapi", "starlette"])
async def test_behind_a_proxy_prefix(otelperf_capture: Capture, static_dir: Path, app_kind: str) -> None:
    """An ASGI server's root_path (uvicorn --root-path /proxy) is part of every template."""
    app = fastapi_app(static_dir) if app_kind == "fastapi" else starlette_app(static_dir)
    paths = ["/legacy/users/5", "/static/hello.txt", "/nope"]
    if app_kind == "fastapi":
        paths = ["/items/7", "/openapi.json", *paths]
    for path in paths:
        response = await get(app, "/proxy" + path if PATH_HAS_ROOT else path, root_path="/proxy")
        assert response.status_code == (404 if path == "/nope" else 200)
    expected = {
        "/items/7": "GET /proxy/items/{item_id}",
        "/openapi.json": "GET /proxy/openapi.json",
        "/legacy/users/5": "GET /proxy/legacy/users/{uid}",
        "/static/hello.txt": "GET /proxy/static/{path}",
        "/nope": "GET",
    }
    assert [(name, route) for name, route, _ in seen(otelperf_capture)] == [
        (expected[p], route_of(expected[p])) for p in paths
    ]


@pytest.mark.filterwarnings("ignore:The `root_path` parameter is deprecated")  # FastAPI >= 0.16x
async def test_fastapi_root_path_setting(otelperf_capture: Capture, static_dir: Path) -> None:
    """FastAPI(root_path=...) sets the prefix itself (the proxy in front sends it or not, as the
    Starlette version expects)."""
    app = fastapi_app(static_dir, root_path="/proxy")
    for path in ("/items/7", "/docs", "/legacy/users/5"):
        assert (await get(app, "/proxy" + path if PATH_HAS_ROOT else path)).status_code == 200
    assert [s.name for s in otelperf_capture.spans] == [
        "GET /proxy/items/{item_id}",
        "GET /proxy/docs",
        "GET /proxy/legacy/users/{uid}",
    ]


async def test_explicit_middleware_around_a_plain_starlette_app(
    otelperf_capture: Capture, static_dir: Path
) -> None:
    await get(OtelperfASGIMiddleware(starlette_app(static_dir)), "/legacy/nested/a/leaf/1")
    assert [s.name for s in otelperf_capture.spans] == ["GET /legacy/nested/{group}/leaf/{lid}"]


# Starlette 1.x asks for httpx2 under its TestClient; httpx still works, which is all we need here.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
@pytest.mark.parametrize(("app_kind", "path"), [("fastapi", "/ws/lobby"), ("starlette", "/ws")])
def test_websocket_sessions_pass_through(
    otelperf_capture: Capture, static_dir: Path, app_kind: str, path: str
) -> None:
    """A websocket session is not an HTTP request: no server span and no duration point."""
    from starlette.testclient import TestClient

    app = fastapi_app(static_dir) if app_kind == "fastapi" else starlette_app(static_dir)
    with TestClient(app) as client, client.websocket_connect(path) as conn:
        assert conn.receive_text() == "hello"
    assert [s for s in otelperf_capture.spans if s.kind.name == "SERVER"] == []
    assert otelperf_capture.metric_points("http.server.request.duration") == []


@pytest.fixture
def many_routes_app() -> Iterator[Starlette]:
    yield Starlette(routes=[Route(f"/r{i}/{{x}}", text) for i in range(300)])


async def test_the_last_of_many_routes(otelperf_capture: Capture, many_routes_app: Starlette) -> None:
    for path in ("/r299/a", "/r0/b", "/r299/c"):
        await get(many_routes_app, path)
    assert [s.name for s in otelperf_capture.spans] == ["GET /r299/{x}", "GET /r0/{x}", "GET /r299/{x}"]


def test_an_endpoint_in_no_route_costs_one_walk_until_a_route_is_added() -> None:
    def elsewhere(request: Request) -> Response:
        return PlainTextResponse("")

    app = Starlette(routes=[Route("/a/{n}", text)])
    index = RouteIndex(app)
    assert index.template({"endpoint": text}) == "/a/{n}"
    for _ in range(3):
        assert index.template({"endpoint": elsewhere}) is None
    assert index.walks == 2
    app.add_route("/b", elsewhere)
    assert index.template({"endpoint": elsewhere}) == "/b"
    assert index.walks == 3


def test_routes_without_a_path_regex_sharing_an_endpoint_are_asked_to_match() -> None:
    """A route class of the app's own (no Starlette ``^...$`` path regex): its ``matches`` decides."""

    class Exact(BaseRoute):
        def __init__(self, path: str) -> None:
            self.path_format = path
            self.endpoint = text

        def matches(self, scope: Any) -> tuple[Match, dict[str, Any]]:
            return (Match.FULL if scope["path"] == self.path_format else Match.NONE), {}

    index = RouteIndex([Exact("/one"), Exact("/two")])
    assert index.template({"endpoint": text, "path": "/two"}) == "/two"
    assert index.template({"endpoint": text, "path": "/three"}) is None


async def test_explicit_middleware_when_starlette_is_not_instrumented(static_dir: Path) -> None:
    """Only the hand-added middleware (otelperf's "fastapi" instrumentation off): the app's router,
    which Starlette puts in the scope, is where the routes are looked up."""
    cap = capture(instrument=("redis",))
    try:
        app = OtelperfASGIMiddleware(starlette_app(static_dir))
        for path in ("/legacy/nested/a/leaf/1", "/static/hello.txt", "/hello/x", "/nope"):
            await get(app, path)
        assert [s.name for s in cap.spans] == [
            "GET /legacy/nested/{group}/leaf/{lid}",
            "GET /static/{path}",
            "GET /hello/{name}",
            "GET",
        ]
    finally:
        stop_capture(cap)


async def test_a_route_tree_that_cannot_be_read_costs_the_name_not_the_span(
    otelperf_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Unreadable(Mount):
        @property
        def routes(self) -> list[BaseRoute]:
            raise RuntimeError("routes of an app of the user's own that cannot be listed")

    app = FastAPI()
    app.add_route("/ok", text)  # found through the index: the walk meets the unreadable mount
    app.router.routes.append(Unreadable("/u", routes=[]))
    monkeypatch.setattr(_internal, "_under_pytest", lambda: False)  # production: record, carry on
    _internal.take_internal_errors()
    response = await get(app, "/ok")
    assert response.status_code == 200
    assert seen(otelperf_capture) == [("GET", None, 200)]
    assert [where for where, _ in _internal.take_internal_errors()] == ["asgi.route_index"]
