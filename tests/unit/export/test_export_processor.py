"""otelperf's exporting span processor: every span delivered or counted, under any transport outcome.

The transport here is a scripted in-memory double (the integration fault matrix uses a real HTTP
receiver); the spans come from a real TracerProvider.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otelperf.export._metrics import register_delivery_metrics
from otelperf.export.processor import OTLPBatchProcessor
from otelperf.export.transport import SendResult

OK = SendResult(True)


class ScriptedTransport:
    """Answers each send with ``outcome(n)`` (n = the attempt number); records delivered span ids."""

    endpoint = "memory://collector"
    component_type = "otlp_http_span_exporter"

    def __init__(self, outcome: Callable[[int], SendResult] = lambda n: OK, delay: float = 0.0) -> None:
        self.outcome = outcome
        self.delay = delay
        self.delivered: list[bytes] = []
        self.attempts: list[float] = []
        self.concurrent = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def send(self, data: bytes, timeout: float) -> SendResult:
        with self._lock:
            attempt = len(self.attempts)
            self.attempts.append(time.monotonic())
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.delay:
                time.sleep(self.delay)
            result = self.outcome(attempt)
            if result.ok:
                request = ExportTraceServiceRequest()
                request.ParseFromString(data)
                ids = [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
                with self._lock:
                    self.delivered.extend(ids[result.rejected :])
            return result
        finally:
            with self._lock:
                self.concurrent -= 1

    def close(self) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    p = TracerProvider(shutdown_on_exit=False)
    yield p


def _produce(provider: TracerProvider, n: int, threads: int = 1) -> None:
    tracer = provider.get_tracer("test")

    def work(count: int) -> None:
        for i in range(count):
            with tracer.start_as_current_span("op", attributes={"i": i}):
                pass

    workers = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)


def _processor(transport: ScriptedTransport, **kwargs: object) -> OTLPBatchProcessor:
    options: dict[str, object] = {
        "max_export_batch_size": 64,
        "schedule_delay": 0.02,
        "shutdown_timeout": 5.0,
        "export_timeout": 2.0,
    }
    options.update(kwargs)
    return OTLPBatchProcessor(transport, **options)  # type: ignore[arg-type]


def test_healthy_collector_gets_every_span_once(provider: TracerProvider) -> None:
    transport = ScriptedTransport()
    processor = _processor(transport)
    provider.add_span_processor(processor)
    _produce(provider, 4000, threads=4)
    processor.shutdown()
    stats = processor.stats()
    assert stats.spans_handed == 4000
    assert stats.spans_exported == 4000 and stats.dropped == {}
    assert len(set(transport.delivered)) == len(transport.delivered) == 4000
    assert stats.balanced and stats.spans_pending == 0


def test_every_span_is_delivered_or_counted_whatever_the_collector_answers(
    provider: TracerProvider,
) -> None:
    rng = random.Random(7)
    outcomes = [
        OK,
        SendResult(True, rejected=3, reason="bad span"),
        SendResult(False, True, "503", "HTTP 503", retry_after=0.01),
        SendResult(False, True, "ConnectionError", "reset"),
        SendResult(False, False, "400", "HTTP 400"),
    ]
    weights = [6, 1, 2, 2, 1]

    def outcome(n: int) -> SendResult:
        return rng.choices(outcomes, weights)[0]

    transport = ScriptedTransport(outcome)
    processor = _processor(transport, retry_buffer=64 * 1024, max_queue_size=1000)
    provider.add_span_processor(processor)
    seen_unbalanced = []

    def watch() -> None:
        while not processor._final:
            stats = processor.stats()
            if not stats.balanced:
                seen_unbalanced.append(stats)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    _produce(provider, 6000, threads=3)
    processor.shutdown(timeout=10)
    watcher.join(5)
    stats = processor.stats()
    assert not seen_unbalanced, seen_unbalanced[:1]  # at any moment: handed = exported + dropped + pending
    assert stats.spans_handed == 6000
    assert stats.spans_pending == 0
    assert stats.spans_exported == len(transport.delivered)
    assert stats.spans_exported + stats.spans_dropped == 6000
    assert stats.dropped.get("400", 0) > 0 and stats.dropped.get("rejected", 0) > 0
    assert set(stats.dropped) <= {"400", "rejected", "buffer_full", "queue_full", "shutdown"}


def test_full_queue_is_counted_not_blocking(provider: TracerProvider) -> None:
    gate = threading.Event()
    transport = ScriptedTransport(lambda n: SendResult(gate.wait(10)))
    processor = _processor(
        transport, max_queue_size=100, max_export_batch_size=100, retry_buffer=64 * 1024, export_concurrency=1
    )
    provider.add_span_processor(processor)
    began = time.monotonic()
    _produce(provider, 20_000)
    assert time.monotonic() - began < 20
    stats = processor.stats()
    assert stats.dropped.get("queue_full", 0) > 0
    gate.set()
    processor.shutdown()
    final = processor.stats()
    assert final.spans_handed == 20_000
    assert (
        final.spans_exported + final.spans_dropped == 20_000 == len(transport.delivered) + final.spans_dropped
    )


def test_outage_keeps_batches_in_the_buffer_until_the_collector_returns(provider: TracerProvider) -> None:
    down_until = time.monotonic() + 1.5
    transport = ScriptedTransport(
        lambda n: (
            OK if time.monotonic() > down_until else SendResult(False, True, "ConnectionError", "refused")
        )
    )
    processor = _processor(transport)
    provider.add_span_processor(processor)
    _produce(provider, 2000)
    time.sleep(0.3)
    during = processor.stats()
    assert during.spans_exported == 0 and during.spans_buffered > 0 and during.buffered_bytes > 0
    assert processor.force_flush(10_000)
    processor.shutdown()
    after = processor.stats()
    assert after.spans_exported == 2000 and after.dropped == {}
    assert len(set(transport.delivered)) == 2000
    # One sender probes a failing collector: the attempts do not multiply by the concurrency.
    assert len(transport.attempts) < 20


def test_small_buffer_drops_the_oldest_and_counts_them(provider: TracerProvider) -> None:
    transport = ScriptedTransport(lambda n: SendResult(False, True, "503", "HTTP 503"))
    processor = _processor(transport, retry_buffer=64 * 1024)
    provider.add_span_processor(processor)
    _produce(provider, 5000)
    assert not processor.force_flush(500)
    peak = processor.stats()
    assert peak.buffered_bytes <= 64 * 1024
    processor.shutdown(timeout=0.5)
    stats = processor.stats()
    assert stats.dropped.get("buffer_full", 0) > 0
    assert stats.spans_exported == 0
    assert stats.spans_dropped == 5000 == stats.dropped["buffer_full"] + stats.dropped["shutdown"]


def test_retry_after_is_honoured(provider: TracerProvider) -> None:
    transport = ScriptedTransport(lambda n: SendResult(False, True, "429", "HTTP 429", 0.4) if n == 0 else OK)
    processor = _processor(transport)
    provider.add_span_processor(processor)
    _produce(provider, 10)
    processor.shutdown()
    assert len(transport.attempts) == 2
    assert transport.attempts[1] - transport.attempts[0] >= 0.4
    assert processor.stats().spans_exported == 10


def test_exports_run_concurrently(provider: TracerProvider) -> None:
    transport = ScriptedTransport(delay=0.2)
    processor = _processor(transport, export_concurrency=4, max_export_batch_size=10, retry_buffer=64 * 1024)
    provider.add_span_processor(processor)
    _produce(provider, 400)
    processor.shutdown(timeout=10)
    assert transport.max_concurrent == 4
    assert processor.stats().spans_exported == 400


def test_spans_after_shutdown_are_counted_and_never_raise(provider: TracerProvider) -> None:
    processor = _processor(ScriptedTransport())
    provider.add_span_processor(processor)
    processor.shutdown()
    _produce(provider, 5)
    stats = processor.stats()
    assert stats.dropped == {"already_shutdown": 5} and stats.spans_handed == 5 and stats.balanced


def test_a_span_ending_as_shutdown_clears_the_queue_is_counted(provider: TracerProvider) -> None:
    processor = _processor(ScriptedTransport())
    provider.add_span_processor(processor)
    processor.shutdown()
    # The app's thread read `_closed` before shutdown set it, and appends after shutdown's
    # final sweep of the queue: the span must be counted, not left pending forever.
    processor._closed = False
    _produce(provider, 3)
    stats = processor.stats()
    assert stats.spans_pending == 0 and stats.spans_handed == 3
    assert stats.dropped == {"already_shutdown": 3} and stats.balanced


def test_delivery_warning_gives_true_counts(
    provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otelperf.export")
    transport = ScriptedTransport(lambda n: SendResult(False, False, "413", "HTTP 413"))
    processor = _processor(transport)
    processor._next_check = 0.0
    provider.add_span_processor(processor)
    _produce(provider, 100)
    processor.force_flush(2000)
    processor._next_check = 0.0
    processor._wake.set()
    deadline = time.monotonic() + 5
    while not caplog.records and time.monotonic() < deadline:
        time.sleep(0.02)
    processor.shutdown()
    messages = [r.getMessage() for r in caplog.records]
    # The first loss is told at once, with the figures of that moment: every span accounted for.
    told = re.search(r"0 delivered, (\d+) dropped \(413: \1\), (\d+) waiting", messages[0])
    assert told is not None, messages
    assert int(told[1]) > 0 and int(told[1]) + int(told[2]) == 100, messages


def _delivery_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "span delivery" in r.getMessage()]


def _wait_for(caplog: pytest.LogCaptureFixture, n: int, seconds: float = 3.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while len(_delivery_warnings(caplog)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return _delivery_warnings(caplog)


def test_an_outage_is_told_at_once_not_at_the_next_periodic_check(
    provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """Two failed requests in a row make an outage; its warning must not wait for the 5 s check
    (a short outage could fall between two checks and never be told)."""
    caplog.set_level(logging.WARNING, "otelperf.export")
    unavailable = SendResult(False, True, "503", "HTTP 503", retry_after=0.05)
    transport = ScriptedTransport(lambda n: unavailable if n < 2 else OK)
    processor = _processor(transport)
    provider.add_span_processor(processor)
    began = time.monotonic()
    _produce(provider, 10)
    warnings = _wait_for(caplog, 1)
    told_after = time.monotonic() - began
    assert processor.force_flush(3000)
    processor.shutdown()
    assert len(warnings) == 1, warnings
    assert "0 dropped (none)" in warnings[0] and "10 waiting" in warnings[0], warnings
    assert "HTTP 503" in warnings[0]
    assert told_after < 2.0  # the periodic check is 5 s after start
    assert transport.delivered and processor.stats().spans_exported == 10


def test_a_single_failed_request_is_a_blip_not_an_outage(
    provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otelperf.export")
    unavailable = SendResult(False, True, "503", "HTTP 503", retry_after=0.05)
    transport = ScriptedTransport(lambda n: unavailable if n == 0 else OK)
    processor = _processor(transport)
    provider.add_span_processor(processor)
    _produce(provider, 10)
    assert processor.force_flush(3000)
    time.sleep(0.2)  # time for a (wrong) warning to be logged
    assert _delivery_warnings(caplog) == []
    processor.shutdown()
    assert processor.stats().spans_exported == 10


def test_the_first_lost_span_is_told_even_right_after_an_outage_warning(
    provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otelperf.export")
    unavailable = SendResult(False, True, "503", "HTTP 503", retry_after=0.05)
    too_large = SendResult(False, False, "413", "HTTP 413")
    transport = ScriptedTransport(lambda n: unavailable if n < 2 else too_large)
    processor = _processor(transport)
    provider.add_span_processor(processor)
    _produce(provider, 10)
    warnings = _wait_for(caplog, 2)
    processor.shutdown()
    assert len(warnings) == 2, warnings  # within the 60 s rate limit: the loss is news
    assert "0 dropped" in warnings[0] and "10 dropped (413: 10)" in warnings[1], warnings


def test_sdk_self_metrics_match_the_stats(provider: TracerProvider) -> None:
    transport = ScriptedTransport(lambda n: SendResult(True, rejected=1) if n == 0 else OK)
    processor = _processor(transport)
    reader = InMemoryMetricReader()
    register_delivery_metrics(MeterProvider(metric_readers=[reader]).get_meter("t"), processor)
    provider.add_span_processor(processor)
    _produce(provider, 300)
    processor.shutdown()
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[tuple[str, str | None], float] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    key = (metric.name, p.attributes.get("error.type"))
                    points[key] = points.get(key, 0) + p.value  # type: ignore[union-attr]
    assert points[("otel.sdk.processor.span.processed", None)] == 300
    assert points[("otel.sdk.exporter.span.exported", None)] == 299
    assert points[("otel.sdk.exporter.span.exported", "rejected")] == 1
    assert points[("otel.sdk.exporter.span.inflight", None)] == 0
    assert points[("otel.sdk.processor.span.queue.capacity", None)] == 8192
    assert points[("otelperf.export.buffer.capacity", None)] == 64 * 1024 * 1024


def test_thirty_seconds_of_outage_at_1000_spans_per_second_fit_the_default_buffer(
    provider: TracerProvider,
) -> None:
    collector_up = threading.Event()
    refused = SendResult(False, True, "ConnectionError", "refused")
    transport = ScriptedTransport(lambda n: OK if collector_up.is_set() else refused)
    processor = _processor(transport, max_export_batch_size=512)  # default 64 MiB buffer
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for second in range(30):  # 30 s worth of request-shaped spans, a second at a time
        for i in range(1000 // 3):
            with tracer.start_as_current_span("GET /orders/{id}", attributes={"http.route": "/orders/{id}"}):
                with tracer.start_as_current_span("SELECT shop.orders") as db:
                    db.set_attribute("db.query.text", "SELECT id, total FROM orders WHERE id = $1")
                    db.set_attribute("db.system.name", "postgresql")
                with tracer.start_as_current_span("GET", attributes={"db.system.name": "redis", "i": i}):
                    pass
        deadline = time.monotonic() + 10
        while processor.stats().spans_queued and time.monotonic() < deadline:
            time.sleep(0.01)  # the worker encodes each second's spans before the next second
        del second
    during = processor.stats()
    assert during.spans_exported == 0 and during.dropped == {}
    assert during.spans_buffered == during.spans_handed == 30 * 999
    collector_up.set()
    processor.shutdown(timeout=15)
    after = processor.stats()
    assert after.spans_exported == 30 * 999 == len(set(transport.delivered))
    assert after.dropped == {}


def test_unsampled_recording_spans_are_not_exported() -> None:
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class RecordOnly(Sampler):
        def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
            return SamplingResult(Decision.RECORD_ONLY)

        def get_description(self) -> str:
            return "record only"

    provider = TracerProvider(sampler=RecordOnly(), shutdown_on_exit=False)
    transport = ScriptedTransport()
    processor = _processor(transport)
    provider.add_span_processor(processor)
    _produce(provider, 10)
    processor.shutdown()
    assert processor.stats().spans_handed == 0 and transport.attempts == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exports_its_own_spans() -> None:
    from otelperf.export.transport import HttpTransport
    from otelperf.testing.otlp_sink import OTLPSink

    with OTLPSink() as sink:
        provider = TracerProvider(shutdown_on_exit=False)
        processor = _processor(HttpTransport(f"{sink.endpoint}/v1/traces"))
        provider.add_span_processor(processor)
        with provider.get_tracer("t").start_as_current_span("parent"):
            pass
        assert processor.force_flush(5000)
        pid = os.fork()
        if pid == 0:  # the child: new threads, a new connection pool, its own figures
            code = 1
            try:
                with provider.get_tracer("t").start_as_current_span("child"):
                    pass
                processor.shutdown(timeout=5)
                stats = processor.stats()
                code = 0 if (stats.spans_handed, stats.spans_exported) == (1, 1) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        processor.shutdown()
        assert sorted(s.name for s in sink.snapshot()) == ["child", "parent"]
