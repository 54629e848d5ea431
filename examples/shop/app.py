"""The shop's ASGI app: ``uvicorn examples.shop.app:app``.

``create_app(config)`` builds a fresh app (tests use it with their own database); the module-level
``app`` is configured from the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from examples.shop import (
    routes_auth,
    routes_catalog,
    routes_files,
    routes_inventory,
    routes_orders,
    routes_products,
    routes_reports,
)
from examples.shop.auth import hash_password
from examples.shop.cache import InProcessCache, make_cache
from examples.shop.config import Config
from examples.shop.db import create_and_seed, create_engine

logger = logging.getLogger("shop")

# Code mode, for the demo only: the service normally runs under `otelperf run -- uvicorn ...`.
CODE_MODE = os.environ.get("SHOP_OTELPERF_INIT") == "1"
if CODE_MODE:
    import otelperf

    otelperf.init(service_name="shop")


def _instrument_in_process_cache(cache: InProcessCache) -> None:
    """Make the in-process cache's lookups visible (Redis is instrumented by otelperf either way).

    The one line a team adds for an in-process cache. otelperf stays optional: without it, or
    without a running otelperf (``instrument_cache`` then passes calls straight through), nothing
    changes; under ``otelperf run`` the lookups become spans with no other change to the app.
    """
    try:
        import otelperf
    except ImportError:
        return
    cache.store = otelperf.instrument_cache(cache.store, name="shop.prices")


class _InjectLatency:
    """Test hook: every request to one route ("METHOD /template") sleeps first.

    A plain ASGI middleware (not ``@app.middleware("http")``): Starlette's BaseHTTPMiddleware runs
    the rest of the app in a task group per request, which is not what a test of latency wants to add.
    """

    def __init__(self, app: Any, route: str, delay_ms: float) -> None:
        from starlette.routing import compile_path

        self.app = app
        self.method, template = route.split(" ", 1)
        self.path_regex = compile_path(template)[0]
        self.delay_s = delay_ms / 1000

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == self.method
            and self.path_regex.match(scope["path"])
        ):
            await asyncio.sleep(self.delay_s)
        await self.app(scope, receive, send)


def create_app(config: Config | None = None) -> FastAPI:
    config = config or Config.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(config)
        await create_and_seed(engine, config)
        cache = make_cache(config.redis_url, config.price_ttl_s)
        if isinstance(cache, InProcessCache):
            _instrument_in_process_cache(cache)
        app.state.engine = engine
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        app.state.cache = cache
        # Tests set app.state.inventory_transport to call the app in-process instead of over TCP.
        transport = getattr(app.state, "inventory_transport", None)
        app.state.http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), transport=transport)
        logger.info("shop ready: database=%s cache=%s", engine.url.render_as_string(), cache.kind)
        try:
            yield
        finally:
            await app.state.http.aclose()
            await cache.close()
            await engine.dispose()

    app = FastAPI(title="shop", version="1.0", lifespan=lifespan)
    app.state.config = config
    # Compared against on login for unknown users; computed once, not per request.
    app.state.dummy_password_hash = hash_password("not-a-password", config.password_iterations)
    for module in (
        routes_auth,
        routes_products,
        routes_catalog,
        routes_orders,
        routes_reports,
        routes_files,
        routes_inventory,
    ):
        app.include_router(module.router)

    if config.inject_latency_ms > 0:
        app.add_middleware(
            _InjectLatency, route=config.inject_latency_route, delay_ms=config.inject_latency_ms
        )

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
