"""Canary: plant one token everywhere a secret can hide, export for real, grep every byte sent.

The token goes into SQL literals (ORM-free text() with inlined literals), bound parameters, Redis
keys and values, URL credentials and signature parameters of outgoing calls, the incoming query
string and an Authorization header (not configured for capture), and an in-process cache key.
Then the real OTLP exporter sends everything to a loopback sink that keeps the raw bodies.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest
import requests

import otelperf
from otelperf.testing import OTLPSink

CANARY = "canary7f3a9e"


@pytest.fixture
def upstream() -> Iterator[str]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.redis
@pytest.mark.postgres
def test_no_secret_leaves_the_process(postgres_url: str, redis_url: str, upstream: str) -> None:
    import redis
    from fastapi import FastAPI
    from sqlalchemy import create_engine, text
    from starlette.testclient import TestClient

    sink = OTLPSink(keep_raw=True).start()
    try:
        otelperf.init(service_name="canary", endpoint=sink.endpoint, schedule_delay="100ms")
        engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
        cache_store = otelperf.instrument_cache({}, name="canary-cache")
        r = redis.Redis.from_url(redis_url)
        app = FastAPI()

        @app.get("/items/{item_id}")
        def item(item_id: str, api_key: str = "") -> dict[str, str]:
            with engine.connect() as conn:
                conn.execute(text(f"SELECT '{CANARY}' AS a, 42{0} AS n WHERE 'x' <> E'{CANARY}\\''"))
                conn.execute(text("SELECT :v AS b"), {"v": CANARY})
                conn.execute(text(f"SELECT $tag${CANARY}$tag$ /* {CANARY} */ -- {CANARY}\n"))
            r.set(f"session:{CANARY}", f"token={CANARY}")
            r.get(f"session:{CANARY}")
            cache_store[CANARY] = CANARY
            cache_store.get(CANARY)
            httpx.get(f"http://user:{CANARY}@{upstream}/x?X-Amz-Signature={CANARY}&token={CANARY}&ok=1")
            requests.get(
                f"http://{upstream}/y?sig={CANARY}&api_key={CANARY}", auth=("user", CANARY), timeout=5
            )
            return {"ok": item_id}

        with TestClient(app) as client:
            response = client.get(
                f"/items/1?api_key={CANARY}&access_token={CANARY}",
                headers={"Authorization": f"Bearer {CANARY}", "Cookie": f"session={CANARY}"},
            )
        assert response.status_code == 200
        assert otelperf.shutdown(timeout=10)
    finally:
        otelperf.shutdown(timeout=5)
        sink.stop()

    spans = sink.snapshot()
    kinds = {(s.kind, s.attributes.get("db.system.name")) for s in spans}
    # The test is only meaningful if every layer really produced its spans.
    assert ("SERVER", None) in kinds
    assert ("CLIENT", "postgresql") in kinds
    assert ("CLIENT", "redis") in kinds
    outgoing = [s for s in spans if s.kind == "CLIENT" and upstream in str(s.attributes.get("url.full", ""))]
    assert len(outgoing) == 2, "one span each for the httpx and the requests call"
    assert any("otelperf.cache.name" in s.attributes for s in spans)
    assert sink.raw, "nothing was exported"
    leaked = [i for i, body in enumerate(sink.raw) if CANARY.encode() in body]
    assert not leaked, f"the canary left the process in {len(leaked)} OTLP request(s)"
    # Sanity check of the check itself: the sanitized statement is there, without the literal.
    statements = [s.attributes.get("db.query.text", "") for s in spans]
    assert any(str(t).startswith("SELECT ? AS a") for t in statements), statements
