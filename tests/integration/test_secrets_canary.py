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

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from tests.integration._canary_scenario import (
    EXPECTED_STATUSES,
    INIT_OPTIONS,
    canaries,
    check_present,
    run_requests,
    span_record,
    upstream_server,
)

import otelperf
from otelperf.testing import OTLPSink


@pytest.fixture
def upstream() -> Iterator[str]:
    """A loopback HTTP server: 404 under /missing, 200 elsewhere."""
    with upstream_server() as address:
        yield address


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
                span_record(
                    s.name,
                    kind=s.kind,
                    status=s.status.code,
                    description=s.status.message,
                    attributes={kv.key: _value(kv.value) for kv in s.attributes},
                    events=[(e.name, {kv.key: _value(kv.value) for kv in e.attributes}) for e in s.events],
                )
            )
    return spans


@pytest.mark.redis
@pytest.mark.postgres
def test_no_canary_leaves_the_process(
    postgres_url: str, redis_url: str, upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    c = canaries()
    table = f"canary_{uuid.uuid4().hex[:10]}"
    caplog.set_level(logging.DEBUG, logger="otelperf")
    sink = OTLPSink(keep_raw=True).start()
    try:
        otelperf.init(
            service_name="canary",
            endpoint=sink.endpoint,
            schedule_delay="100ms",
            metric_export_interval="200ms",
            **INIT_OPTIONS,
        )
        statuses = run_requests(c, postgres_url, redis_url, upstream, table)
        assert statuses == EXPECTED_STATUSES
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
    check_present(_exported_spans(sink.raw), upstream, table)
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
