"""Cross-cutting properties of the whole instrumentation set, not of one library.

- init() again (three times, concurrently, instrumentors re-run) still gives one span per
  operation and one middleware.
- Unsampled requests cost no attribute work: the sanitizer and the URL redactor never run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

import otelperf
from otelperf._runtime import setup as _setup
from otelperf.instrumentation._base import InstrumentContext, load_instrumentor
from otelperf.testing import Capture, capture, stop_capture


def _make_app() -> FastAPI:
    engine = create_engine("sqlite://")
    prices = otelperf.instrument_cache({"p1": 10}, name="prices")
    app = FastAPI()

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, int]:
        with engine.connect() as conn:
            total = conn.execute(text("SELECT 41 + :n"), {"n": order_id}).scalar_one()
        return {"total": total + prices.get("p1", 0)}

    @app.get("/outgoing")
    def outgoing() -> dict[str, int]:
        # The TestClient's transport is not a network; a mock transport keeps httpx real.
        with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(204))) as client:
            return {"status": client.get("http://upstream.test/ping?token=abc").status_code}

    return app


@pytest.fixture
def cap() -> Iterator[Capture]:
    c = capture()
    try:
        yield c
    finally:
        stop_capture(c)


def _request_spans(cap: Capture) -> dict[str, int]:
    counts: dict[str, int] = {}
    for span in cap.spans:
        if span.name.startswith("GET /orders") or span.name == "SELECT" or span.name.startswith("cache."):
            counts[span.name] = counts.get(span.name, 0) + 1
    return counts


def test_repeated_and_concurrent_init_keep_one_span_per_operation(cap: Capture) -> None:
    app = _make_app()  # created before the extra init() calls, like most apps
    assert otelperf.init() is cap.runtime
    assert otelperf.init(service_name="otelperf-test") is cap.runtime
    threads = [threading.Thread(target=otelperf.init) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Even instrumentors run a second time directly must not patch twice.
    assert cap.runtime.tracer is not None and cap.runtime.meter is not None
    ctx = InstrumentContext(cap.runtime.tracer, cap.runtime.meter, cap.runtime.settings)
    for name in ("fastapi", "sqlalchemy", "httpx", "requests"):
        load_instrumentor(name).instrument(ctx)

    with TestClient(app) as client:
        assert client.get("/orders/1").json() == {"total": 52}
    counts = _request_spans(cap)
    assert counts == {"GET /orders/{order_id}": 1, "SELECT": 1, "cache.get prices": 1}, counts
    server = cap.spans_named("GET /orders/{order_id}")[0]
    db = cap.spans_named("SELECT")[0]
    assert db.parent is not None and db.parent.span_id == server.context.span_id
    assert _setup.current() is cap.runtime


def test_unsampled_requests_compute_no_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    import otelperf.instrumentation._asgi_request as asgi_request
    import otelperf.instrumentation.httpx as httpx_mod
    import otelperf.instrumentation.sqlalchemy as sa_mod

    def spy(name: str, real: object) -> object:
        def wrapper(*args: object, **kwargs: object) -> object:
            calls.append(name)
            return real(*args, **kwargs)  # type: ignore[operator]

        return wrapper

    monkeypatch.setattr(sa_mod, "sanitize", spy("sanitize", sa_mod.sanitize))
    monkeypatch.setattr(asgi_request, "redact_query", spy("redact_query", asgi_request.redact_query))
    monkeypatch.setattr(httpx_mod, "redact_url", spy("redact_url", httpx_mod.redact_url))

    c = capture(sampler="always_off")
    try:
        app = _make_app()
        with TestClient(app) as client:
            assert client.get("/orders/2?x=1").status_code == 200
            assert client.get("/outgoing?y=2").json() == {"status": 204}
        assert c.spans == []
        assert calls == []
        # Metrics are not sampled: the request still counts.
        points = c.metric_points("http.server.request.duration")
        assert sum(p.count for p in points) >= 2
    finally:
        stop_capture(c)

    # The same requests, sampled, do run them (so the spy is wired to the real call sites).
    c = capture()
    try:
        with TestClient(_make_app()) as client:
            client.get("/orders/2?x=1")
            client.get("/outgoing?y=2")
        assert {"sanitize", "redact_query", "redact_url"} <= set(calls)
    finally:
        stop_capture(c)


def test_request_duration_exemplar_points_at_the_request_trace(cap: Capture) -> None:
    with TestClient(_make_app()) as client:
        client.get("/orders/3")
    [server] = cap.spans_named("GET /orders/{order_id}")
    points = [
        p
        for p in cap.metric_points("http.server.request.duration")
        if p.attributes.get("http.route") == "/orders/{order_id}"
    ]
    exemplars = [e for p in points for e in p.exemplars]
    assert exemplars, "the latency histogram carries an exemplar for the request"
    assert {e.trace_id for e in exemplars} == {server.context.trace_id}
    assert {e.span_id for e in exemplars} == {server.context.span_id}
