"""The fault matrix: a real otelperf pipeline against a collector in trouble, at 1,000 spans/s.

Each case runs ``otelperf.init()`` against a loopback OTLP/HTTP receiver (``OTLPSink``) that
misbehaves for part of the run, while a worker thread produces requests (a SERVER span with a
database and a cache child) paced at 1,000 spans/s for 10 s through otelperf's own tracer and
detectors. Then, as a user would check: the app saw no exception and kept its rate; the retry
buffer's byte gauge stayed within its bound; and every span was either received by the
collector or counted as dropped, by the figures otelperf exported as ``otel.sdk.*`` metrics.
Only an outage longer than a small retry buffer may lose spans, and every lost one is counted.
The restart case runs once more through a FastAPI app under uvicorn, driven over loopback HTTP.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

import otelperf
from otelperf._runtime import setup as _setup
from otelperf.config import RETRY_BUFFER_MIN
from otelperf.testing.otlp_sink import Fault, OTLPSink

pytestmark = pytest.mark.slow

RATE = 1000  # spans per second
SPANS_PER_REQUEST = 3
RUN_S = 10.0
FAULT_FROM_S = 1.0
SMALL_BUFFER = 4 * RETRY_BUFFER_MIN  # 256 KiB


@dataclass(frozen=True)
class Case:
    name: str
    fault_s: float  # how long the fault lasts, from FAULT_FROM_S
    apply: Callable[[OTLPSink], None]  # called every tick while the fault lasts
    retry_buffer: int = 64 * 1024 * 1024
    loses_spans: bool = False


def _refuse(sink: OTLPSink) -> None:
    if sink._server is not None:
        sink.refuse()


def _status(status: int, retry_after: Callable[[], str]) -> Callable[[OTLPSink], None]:
    def apply(sink: OTLPSink) -> None:
        sink.fault = Fault("status", status, retry_after=retry_after())

    return apply


def _http_date(seconds_ahead: float) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


def _mode(mode: str) -> Callable[[OTLPSink], None]:
    fault = Fault(mode, delay=1.0)

    def apply(sink: OTLPSink) -> None:
        sink.fault = fault

    return apply


CASES = [
    Case("healthy", 0.0, lambda sink: None),
    Case("refused", 5.0, _refuse),
    Case("hanging", 5.0, _mode("hang")),
    Case("503-retry-after-seconds", 5.0, _status(503, lambda: "1")),
    Case(
        "429-retry-after-date",
        5.0,
        _status(429, lambda: email.utils.formatdate(time.time() + 1, usegmt=True)),
    ),
    Case("connection-reset", 5.0, _mode("reset")),
    Case("slow-1s-per-request", RUN_S, _mode("slow")),
    Case("restarted-after-8s", 8.0, _refuse),
    Case("outage-beyond-small-buffer", 8.0, _refuse, retry_buffer=SMALL_BUFFER, loses_spans=True),
]


@dataclass
class Run:
    produced: int
    elapsed: float
    errors: list[BaseException]
    peak_buffered: int
    shutdown_ok: bool


def _drive(runtime: _setup.Runtime, sink: OTLPSink, case: Case) -> Run:
    """Produce requests at RATE spans/s for RUN_S seconds, applying the fault on schedule."""
    tracer = runtime.tracer
    assert tracer is not None
    errors: list[BaseException] = []
    produced = peak = 0
    began = time.monotonic()
    while (now := time.monotonic() - began) < RUN_S:
        if FAULT_FROM_S <= now < FAULT_FROM_S + case.fault_s:
            case.apply(sink)
        else:
            sink.fault = None
            if sink._server is None:
                sink.start()  # the collector is back, on the same port
        due = int(now * RATE) // SPANS_PER_REQUEST * SPANS_PER_REQUEST
        while produced < due:
            try:
                with tracer.start_as_current_span("GET /orders/{id}", kind=otelperf_kind_server()) as root:
                    root.set_attribute("http.route", "/orders/{id}")
                    root.set_attribute("http.response.status_code", 200)
                    with tracer.start_as_current_span("SELECT shop.orders") as db:
                        db.set_attribute("db.system.name", "postgresql")
                        db.set_attribute("db.query.text", "SELECT id, total FROM orders WHERE id = $1")
                    with tracer.start_as_current_span("GET") as cache:
                        cache.set_attribute("db.system.name", "redis")
            except BaseException as exc:  # the assertion below reports it
                errors.append(exc)
            produced += SPANS_PER_REQUEST
        delivery = runtime.delivery
        assert delivery is not None
        peak = max(peak, delivery.buffered_bytes)
        time.sleep(0.01)
    elapsed = time.monotonic() - began
    sink.fault = None
    if sink._server is None:
        sink.start()
    ok = otelperf.shutdown(timeout=20)
    return Run(produced, elapsed, errors, peak, ok)


def otelperf_kind_server() -> object:
    from opentelemetry.trace import SpanKind

    return SpanKind.SERVER


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    with OTLPSink(ids_only=True) as s:
        yield s
    s.fault = None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_span_is_delivered_or_counted(
    case: Case, sink: OTLPSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otelperf")
    runtime = otelperf.init(
        service_name=f"faults-{case.name}",
        endpoint=sink.endpoint,
        instrument="none",
        retry_buffer=case.retry_buffer,
        metric_export_interval="60s",  # the final export at shutdown carries the final figures
    )
    run = _drive(runtime, sink, case)
    delivery = runtime.delivery
    assert delivery is not None
    print(  # the fault-matrix numbers (pytest -s shows them)
        f"\n{case.name}: produced={run.produced} rate={run.produced / run.elapsed:.0f}/s "
        f"received={len(sink.span_ids)} dropped={delivery.describe_drops()} "
        f"peak_buffered={run.peak_buffered} requests={delivery.export_requests} "
        f"failures={delivery.export_failures} shutdown_ok={run.shutdown_ok}"
    )

    assert run.errors == []
    assert abs(run.produced / run.elapsed - RATE) <= 0.1 * RATE
    assert run.peak_buffered <= case.retry_buffer

    # What the user sees: the otel.sdk.* metrics otelperf exported at shutdown.
    exported = sink.sdk_metric("otel.sdk.exporter.span.exported", error_type=None)
    dropped = sink.sdk_metric("otel.sdk.exporter.span.exported", error_type="*") + sink.sdk_metric(
        "otel.sdk.processor.span.processed", error_type="*"
    )
    received = len(sink.span_ids)
    assert sink.duplicate_spans == 0
    assert exported == received == delivery.spans_exported
    assert dropped == delivery.spans_dropped
    assert received + dropped == run.produced == delivery.spans_handed
    warnings = [r.getMessage() for r in caplog.records if r.name == "otelperf.export"]
    if case.name == "healthy":
        assert warnings == []
    elif case.name.startswith("slow"):
        assert any("is slow" in w for w in warnings), warnings
    else:
        # The collector failed: one warning when the outage is seen, with the true figures (not
        # one per batch), and one more the moment spans start being lost.
        delivery_warnings = [w for w in warnings if "span delivery" in w]
        assert len(delivery_warnings) == (2 if case.loses_spans else 1), warnings
        assert "waiting" in delivery_warnings[0] and "MiB buffered" in delivery_warnings[0]
        assert " 0 dropped (none)" in delivery_warnings[0], warnings
        if case.loses_spans:
            assert "buffer_full" in delivery_warnings[1], warnings
    if case.loses_spans:
        assert dropped > 0 and set(delivery.dropped) == {"buffer_full"}
        assert run.shutdown_ok is False  # shutdown() says that spans were lost
    else:
        assert dropped == 0, delivery.dropped
        assert run.shutdown_ok is True


def test_a_real_asgi_app_keeps_its_rate_and_every_span_through_a_collector_restart(
    sink: OTLPSink,
) -> None:
    """The restart case through a FastAPI app served by uvicorn, driven over loopback HTTP."""
    import socket
    import threading

    import httpx
    import uvicorn
    from fastapi import FastAPI

    runtime = otelperf.init(
        service_name="faults-asgi",
        endpoint=sink.endpoint,
        instrument="fastapi",
        metric_export_interval="60s",
    )
    tracer = runtime.tracer
    assert tracer is not None
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        with tracer.start_as_current_span("SELECT shop.orders") as db:
            db.set_attribute("db.system.name", "postgresql")
        with tracer.start_as_current_span("GET") as cache:
            cache.set_attribute("db.system.name", "redis")
        return {"id": order_id}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    requests_rate = RATE // SPANS_PER_REQUEST
    sent = failed = 0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            began = time.monotonic()
            while (now := time.monotonic() - began) < RUN_S:
                if FAULT_FROM_S <= now < FAULT_FROM_S + 8.0:
                    _refuse(sink)
                elif sink._server is None:
                    sink.start()
                while sent < int(now * requests_rate):
                    if client.get(f"/orders/{sent}").status_code != 200:
                        failed += 1
                    sent += 1
                time.sleep(0.005)
            elapsed = time.monotonic() - began
    finally:
        server.should_exit = True
        thread.join(10)
        if sink._server is None:
            sink.start()
    ok = otelperf.shutdown(timeout=20)
    delivery = runtime.delivery
    assert delivery is not None
    print(
        f"\nasgi restart: requests={sent} rate={sent / elapsed:.0f}/s received={len(sink.span_ids)} "
        f"dropped={delivery.describe_drops()} shutdown_ok={ok}"
    )
    assert failed == 0
    assert abs(sent / elapsed - requests_rate) <= 0.1 * requests_rate
    assert delivery.spans_handed == SPANS_PER_REQUEST * sent  # one SERVER span and two children
    exported = sink.sdk_metric("otel.sdk.exporter.span.exported", error_type=None)
    assert exported == len(sink.span_ids) == SPANS_PER_REQUEST * sent
    assert delivery.dropped == {} and ok is True
