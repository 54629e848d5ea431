"""Issue 12, end to end: one unique canary per way a secret reached the exported telemetry.

Each canary is planted where a user's secret would be: the parameters and DETAIL line of an
IntegrityError on the real PostgreSQL and on SQLite, the arguments a Redis error echoes, the
userinfo and credential query parameters of URLs in httpx and requests errors (one canary per
parameter name), the incoming query string, the SQL sanitizer's former gaps (nested comments,
SQLite double-quoted values, SET values), and statements that become slow-query and N+1
findings. The requests go through the real otelperf pipeline (FastAPI, SQLAlchemy with psycopg,
redis-py, httpx, requests, the detectors) exporting OTLP/HTTP to a loopback sink that keeps every
request body; every byte of them, and every log record otelperf wrote, is searched for every
canary. The non-secret parts (the error classes, the sanitized statements, the redacted URLs'
hosts, the findings) are asserted present, so the test cannot pass by exporting nothing.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

import otelperf
from otelperf.testing import OTLPSink

# Query parameter names issue 12 found passing through; each gets its own canary.
PARAM_NAMES = (
    "token", "api-key", "x-api-key", "refresh_token", "id_token", "jwt", "session", "sessionid",
    "auth_token", "passwd", "private_token", "client_secret", "access-token", "X-Amz-Signature",
)  # fmt: skip
CASES = (
    "pg_param", "pg_detail", "pg_literal", "sqlite_param", "sqlite_literal", "redis_command",
    "redis_arg", "httpx_userinfo", "requests_userinfo", "nested_comment", "sqlite_dq_value",
    "set_value", "slow_literal", "n_plus_one_literal", "incoming_api_key", "incoming_refresh",
    "app_password",
)  # fmt: skip


def _canaries() -> dict[str, str]:
    names = list(CASES) + [f"param:{name}" for name in PARAM_NAMES]
    return {name: f"cnry{uuid.uuid4().hex[:14]}" for name in names}


@pytest.fixture
def upstream() -> Iterator[str]:
    """A loopback HTTP server: 404 under /missing, 200 elsewhere."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404 if self.path.startswith("/missing") else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    return None if which is None else getattr(v, which)


def _exported_spans(bodies: list[bytes]) -> list[dict[str, Any]]:
    """Spans of the trace requests among ``bodies`` (metrics requests do not parse as valid spans)."""
    spans: list[dict[str, Any]] = []
    for body in bodies:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception:
            continue
        found = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        if not found or not all(len(s.trace_id) == 16 and len(s.span_id) == 8 for s in found):
            continue
        for s in found:
            spans.append(
                {
                    "name": s.name,
                    "kind": s.kind,
                    "status": s.status.code,
                    "description": s.status.message,
                    "attributes": {kv.key: _value(kv.value) for kv in s.attributes},
                    "events": [(e.name, {kv.key: _value(kv.value) for kv in e.attributes}) for e in s.events],
                }
            )
    return spans


@pytest.mark.redis
@pytest.mark.postgres
def test_no_canary_leaves_the_process(
    postgres_url: str, redis_url: str, upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis
    from fastapi import FastAPI
    from sqlalchemy import create_engine, text
    from starlette.testclient import TestClient

    c = _canaries()
    table = f"canary_{uuid.uuid4().hex[:10]}"
    caplog.set_level(logging.DEBUG, logger="otelperf")
    sink = OTLPSink(keep_raw=True).start()
    try:
        otelperf.init(
            service_name="canary",
            endpoint=sink.endpoint,
            schedule_delay="100ms",
            metric_export_interval="200ms",
            slow_query_ms=0.001,  # every statement is a slow-query finding: its text reaches events, labels
            n_plus_one_min_ms=0,  # six fast repeats are an N+1 however quick the database is
        )
        pg = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
        lite = create_engine("sqlite://")
        r = redis.Redis.from_url(redis_url)
        app = FastAPI()

        @app.get("/pg-integrity")
        def pg_integrity() -> None:
            with pg.begin() as conn:
                conn.execute(text(f"CREATE TEMP TABLE {table} (email TEXT UNIQUE, pw TEXT, note TEXT)"))
                insert = text(
                    f"INSERT INTO {table} (email, pw, note) VALUES (:email, :pw, '{c['pg_literal']}')"
                )
                conn.execute(insert, {"email": c["pg_detail"], "pw": c["pg_param"]})
                conn.execute(insert, {"email": c["pg_detail"], "pw": c["pg_param"]})

        @app.get("/sqlite-integrity")
        def sqlite_integrity() -> None:
            with lite.begin() as conn:
                conn.execute(text("CREATE TABLE IF NOT EXISTS u (email TEXT UNIQUE, pw TEXT)"))
                conn.execute(text("DELETE FROM u"))
                insert = text(f"INSERT INTO u (email, pw) VALUES ('{c['sqlite_literal']}', :pw)")
                conn.execute(insert, {"pw": c["sqlite_param"]})
                conn.execute(insert, {"pw": c["sqlite_param"]})

        @app.get("/redis-error")
        def redis_error() -> None:
            r.execute_command(f"NOSUCH{c['redis_command']}", c["redis_arg"])

        @app.get("/httpx-status")
        def httpx_status() -> None:
            params = "&".join(f"{name}={c['param:' + name]}" for name in PARAM_NAMES[:7])
            url = f"http://user:{c['httpx_userinfo']}@{upstream}/missing?{params}&page=2"
            httpx.get(url).raise_for_status()

        @app.get("/requests-connection")
        def requests_connection() -> None:
            params = "&".join(f"{name}={c['param:' + name]}" for name in PARAM_NAMES[7:])
            url = f"http://user:{c['requests_userinfo']}@127.0.0.1:{_closed_port()}/x?{params}&page=2"
            requests.get(url, timeout=5)

        @app.get("/ok-calls")
        def ok_calls() -> dict[str, bool]:
            params = "&".join(f"{name}={c['param:' + name]}" for name in PARAM_NAMES)
            httpx.get(f"http://{upstream}/fine?{params}")
            requests.get(f"http://{upstream}/fine?{params}", timeout=5)
            return {"ok": True}

        @app.get("/gaps")
        def gaps(api_key: str = "") -> dict[str, bool]:
            with pg.connect() as conn:
                conn.execute(text(f"SELECT 1 /* a /* b */ {c['nested_comment']} */"))
                conn.execute(text(f"SET application_name TO {c['set_value']}"))
                conn.execute(text("RESET application_name"))
                conn.execute(text(f"SELECT pg_sleep(0.01), '{c['slow_literal']}'"))
                for i in range(6):
                    conn.execute(text(f"SELECT '{c['n_plus_one_literal']}', {i}"))
            with lite.connect() as conn:
                conn.execute(text("CREATE TABLE IF NOT EXISTS v (name TEXT)"))
                conn.execute(text(f'SELECT * FROM v WHERE name = "{c["sqlite_dq_value"]}"'))
            return {"ok": True}

        @app.get("/app-error")
        def app_error() -> None:
            raise RuntimeError(f"login to https://svc.internal/ failed: password={c['app_password']}")

        with TestClient(app, raise_server_exceptions=False) as client:
            statuses = {
                path: client.get(path).status_code
                for path in (
                    "/pg-integrity",
                    "/sqlite-integrity",
                    "/redis-error",
                    "/httpx-status",
                    "/requests-connection",
                    "/ok-calls",
                    "/app-error",
                )
            }
            incoming = f"/gaps?api-key={c['incoming_api_key']}&refresh_token={c['incoming_refresh']}&page=1"
            statuses["/gaps"] = client.get(incoming).status_code
        assert statuses == {
            "/pg-integrity": 500, "/sqlite-integrity": 500, "/redis-error": 500, "/httpx-status": 500,
            "/requests-connection": 500, "/ok-calls": 200, "/app-error": 500, "/gaps": 200,
        }  # fmt: skip
        assert otelperf.shutdown(timeout=15)
    finally:
        otelperf.shutdown(timeout=5)
        sink.stop()

    # --- every exported byte and every log record, for every canary --------------------------
    assert sink.raw, "nothing was exported"
    logs = [logging.Formatter().format(record) for record in caplog.records]
    leaks = {
        name: [i for i, body in enumerate(sink.raw) if canary.encode() in body] for name, canary in c.items()
    }
    leaked = {name: where for name, where in leaks.items() if where}
    assert not leaked, f"canaries left the process in OTLP request bodies: {leaked}"
    leaked_logs = [name for name, canary in c.items() if any(canary in line for line in logs)]
    assert not leaked_logs, f"canaries in otelperf's log records: {leaked_logs}"

    # --- what must be there, so that the test cannot pass by exporting nothing -----------------
    spans = _exported_spans(sink.raw)
    servers = {s["attributes"].get("http.route"): s for s in spans if s["kind"] == 2}  # SERVER

    def exception(route: str) -> dict[str, Any]:
        span = servers[route]
        assert span["status"] == 2, route  # ERROR
        [attributes] = [a for name, a in span["events"] if name == "exception"]
        return attributes

    pg_error = exception("/pg-integrity")
    assert pg_error["exception.type"] == "sqlalchemy.exc.IntegrityError"
    assert pg_error["exception.message"].startswith(
        '(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "'
    )
    assert (
        f"[SQL: INSERT INTO {table} (email, pw, note) VALUES (%(email)s, %(pw)s, ?)]"
        in pg_error["exception.message"]
    )
    assert "psycopg.errors.UniqueViolation: duplicate key value" in pg_error["exception.stacktrace"]
    assert servers["/pg-integrity"]["description"].startswith(
        "IntegrityError: (psycopg.errors.UniqueViolation)"
    )

    lite_error = exception("/sqlite-integrity")
    assert lite_error["exception.message"] == (
        "(sqlite3.IntegrityError) UNIQUE constraint failed: u.email\n"
        "[SQL: INSERT INTO u (email, pw) VALUES (?, ?)]"
    )
    assert exception("/redis-error")["exception.type"] == "redis.exceptions.ResponseError"
    assert exception("/redis-error")["exception.message"].startswith("unknown command '?'")

    status_error = exception("/httpx-status")
    assert status_error["exception.type"] == "httpx.HTTPStatusError"
    assert (
        f"'http://REDACTED:REDACTED@{upstream}/missing?token=REDACTED&" in status_error["exception.message"]
    )
    assert "&page=2'" in status_error["exception.message"]
    connection_error = exception("/requests-connection")
    assert connection_error["exception.type"] == "requests.exceptions.ConnectionError"
    assert "Max retries exceeded with url: /x?sessionid=REDACTED&" in connection_error["exception.message"]
    app_error = exception("/app-error")
    assert app_error["exception.message"] == "login to https://svc.internal/ failed: password=REDACTED"

    gaps = servers["/gaps"]
    assert gaps["attributes"]["url.query"] == "api-key=REDACTED&refresh_token=REDACTED&page=1"
    urls = [s["attributes"]["url.full"] for s in spans if "url.full" in s["attributes"]]
    assert any(u.startswith(f"http://{upstream}/fine?token=REDACTED&api-key=REDACTED&") for u in urls), urls
    statements = {s["attributes"].get("db.query.text") for s in spans}
    assert "SELECT ? " in statements or "SELECT ?" in statements  # the nested comment, gone
    assert "SET application_name TO ?" in statements
    assert "SELECT * FROM v WHERE name = ?" in statements
    findings = [a for s in spans for name, a in s["events"] if name == "otelperf.finding"]
    finding_statements = {(f["otelperf.finding.detector"], f["otelperf.finding.statement"]) for f in findings}
    assert ("n_plus_one", "SELECT ?, ?") in finding_statements, finding_statements
    assert ("slow_query", "SELECT pg_sleep(?), ?") in finding_statements, finding_statements
    assert any(b"otelperf.findings" in body and b"SELECT pg_sleep(?), ?" in body for body in sink.raw), (
        "the findings metric, labelled with the sanitized statement"
    )


def test_app_spans_through_the_scrubbing_exporter_and_the_real_otlp_exporter() -> None:
    """Spans otelperf did not record (the app's own, via the SDK's record_exception): the
    export-side pass in front of otelperf's OTLP/HTTP exporter, to the loopback sink."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode
    from sqlalchemy import create_engine, text

    from otelperf.export.otlp_http import FastOTLPSpanExporter
    from otelperf.redaction.span_filter import ScrubbingSpanExporter

    c = {name: f"cnry{uuid.uuid4().hex[:14]}" for name in ("param", "literal", "url", "desc")}
    sink = OTLPSink(keep_raw=True).start()
    provider = TracerProvider()
    exporter = FastOTLPSpanExporter(sink.endpoint + "/v1/traces", timeout=5)
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(exporter)))
    tracer = provider.get_tracer("app")
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE u (email TEXT UNIQUE)"))
            insert = text(f"INSERT INTO u (email) VALUES (:e) -- '{c['literal']}'")
            conn.execute(insert, {"e": c["param"]})
            with pytest.raises(Exception, match="UNIQUE"), tracer.start_as_current_span("import-users"):
                conn.execute(insert, {"e": c["param"]})
        with tracer.start_as_current_span("call") as span:
            span.record_exception(httpx.ConnectError(f"https://u:{c['url']}@h.example/x?token={c['url']}"))
            span.set_status(Status(StatusCode.ERROR, f"sync failed: api_key={c['desc']}"))
        with tracer.start_as_current_span("fine"):
            pass
        assert provider.force_flush(5000)
    finally:
        provider.shutdown()
        sink.stop()
    leaked = [name for name, canary in c.items() if any(canary.encode() in body for body in sink.raw)]
    assert not leaked, leaked
    spans = {s["name"]: s for s in _exported_spans(sink.raw)}
    assert set(spans) == {"import-users", "call", "fine"}
    [(_, error)] = spans["import-users"]["events"]
    assert error["exception.type"] == "sqlalchemy.exc.IntegrityError"
    first, statement, link = str(error["exception.message"]).split("\n")
    assert first == "(sqlite3.IntegrityError) UNIQUE constraint failed: u.email"
    assert statement == "[SQL: INSERT INTO u (email) VALUES (?)]"
    assert link.startswith("(Background on this error at: https://sqlalche.me/e/")  # SQLAlchemy's own, kept
    [(_, call)] = spans["call"]["events"]
    assert call["exception.message"] == "https://REDACTED:REDACTED@h.example/x?token=REDACTED"
    assert spans["call"]["description"] == "sync failed: api_key=REDACTED"


@pytest.mark.postgres
async def test_asyncpg_errors_directly_and_through_sqlalchemy(postgres_url: str) -> None:
    """asyncpg's own errors, and SQLAlchemy's asyncio adapter around them, on the real PostgreSQL."""
    import asyncpg
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from otelperf.redaction.exceptions import sanitize_exception

    param, detail = (f"cnry{uuid.uuid4().hex[:14]}" for _ in range(2))
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TEMP TABLE u (email TEXT UNIQUE, pw TEXT)")
        await conn.execute("INSERT INTO u VALUES ($1, $2)", detail, param)
        with pytest.raises(asyncpg.UniqueViolationError) as caught:
            await conn.execute("INSERT INTO u VALUES ($1, $2)", detail, param)
    finally:
        await conn.close()
    assert detail in str(caught.value.detail)  # the premise: the driver carries the row's value
    direct = sanitize_exception(caught.value)
    assert direct.type == "asyncpg.exceptions.UniqueViolationError"
    assert direct.message == 'duplicate key value violates unique constraint "u_email_key"'

    engine = create_async_engine(postgres_url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.begin() as aconn:
            await aconn.execute(text("CREATE TEMP TABLE u (email TEXT UNIQUE, pw TEXT)"))
            insert = text("INSERT INTO u VALUES (:e, :p)")
            await aconn.execute(insert, {"e": detail, "p": param})
            with pytest.raises(Exception, match="UniqueViolation") as wrapped:
                await aconn.execute(insert, {"e": detail, "p": param})
    finally:
        await engine.dispose()
    through = sanitize_exception(wrapped.value)
    assert through.type == "sqlalchemy.exc.IntegrityError"
    assert through.message.endswith("[SQL: INSERT INTO u VALUES ($1, $2)]")
    assert "asyncpg.exceptions.UniqueViolationError" in through.stacktrace
    for safe in (direct, through):
        assert param not in "".join(safe) and detail not in "".join(safe)
