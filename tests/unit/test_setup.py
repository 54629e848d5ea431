"""init()/shutdown(): idempotency, OTEL_SDK_DISABLED, and an unreachable collector."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import otelperf
from otelperf import _setup

EXPORT_THREAD_NAMES = (
    "OtelBatchSpanRecordProcessor",
    "OtelPeriodicExportingMetricReader",
    "OtelBatch",
    "otelperf-export",
    "otelperf-send",
)


@pytest.fixture(autouse=True)
def _stopped() -> Iterator[None]:
    assert _setup.current() is None
    yield
    otelperf.shutdown(timeout=5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port that accepts TCP connections (kernel backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def _export_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(EXPORT_THREAD_NAMES)]


def test_init_three_times_returns_one_runtime() -> None:
    first = otelperf.init(
        service_name="idem", instrument="none", endpoint=f"http://127.0.0.1:{_closed_port()}"
    )
    assert otelperf.init() is first
    assert otelperf.init(service_name="idem") is first
    assert first.tracer_provider is not None
    # one processor chain
    assert len(first.tracer_provider._active_span_processor._span_processors) == 1


def test_concurrent_init_builds_one_pipeline() -> None:
    results: list[_setup.Runtime] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(otelperf.init(service_name="race", instrument="none"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert len({id(r) for r in results}) == 1


def test_second_init_with_other_settings_warns(caplog: pytest.LogCaptureFixture) -> None:
    otelperf.init(service_name="one", instrument="none")
    with caplog.at_level(logging.WARNING, logger="otelperf"):
        otelperf.init(service_name="two", instrument="none")
    assert any("already called" in r.getMessage() for r in caplog.records)


def test_sdk_disabled_gives_no_spans_and_no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    before = set(_export_threads())
    runtime = otelperf.init(service_name="off")
    assert runtime.enabled is False
    assert runtime.tracer_provider is None and runtime.meter_provider is None
    assert runtime.instrumentations == {}
    assert set(_export_threads()) == before


def test_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments")
    runtime = otelperf.init(
        service_name="shop", service_version="1.2.3", environment="staging", instrument="none"
    )
    assert runtime.tracer_provider is not None
    attrs = runtime.tracer_provider.resource.attributes
    assert attrs["service.name"] == "shop"
    assert attrs["service.version"] == "1.2.3"
    assert attrs["deployment.environment.name"] == "staging"
    assert attrs["team"] == "payments"
    assert attrs["telemetry.sdk.language"] == "python"


@pytest.mark.parametrize("kind", ["closed-port", "unresolvable-host", "blackhole"])
def test_unreachable_collector_never_troubles_the_app(
    kind: str, blackhole: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = {
        "closed-port": f"http://127.0.0.1:{_closed_port()}",
        "unresolvable-host": "http://collector.does-not-exist.invalid:4318",
        "blackhole": blackhole,
    }[kind]
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    runtime = otelperf.init(
        service_name="unreachable",
        instrument="none",
        endpoint=endpoint,
        export_timeout=1.0,
        schedule_delay="50ms",
    )
    assert time.monotonic() - started < 1.0, "startup must not wait for the collector"
    assert runtime.tracer is not None

    # The app keeps working while export fails in the background: spans are created and ended
    # on the app's thread without waiting for the network.
    for batch in range(3):
        for i in range(200):
            with runtime.tracer.start_as_current_span(f"op-{i}"):
                pass
        assert runtime.tracer_provider is not None
        runtime.tracer_provider.force_flush(timeout_millis=3000)
        del batch

    began = time.monotonic()
    finished = otelperf.shutdown(timeout=2.0)
    took = time.monotonic() - began
    assert took < 2.0 + 1.0, f"shutdown took {took:.1f}s with a 2s timeout"
    assert finished is False, "shutdown() must say that spans were not delivered"

    # One warning per kind of telemetry (spans, metrics) in the test's minute, not one per batch.
    export_warnings = [r.getMessage() for r in caplog.records if r.name == "otelperf.export"]
    span_warnings = [m for m in export_warnings if "span delivery" in m]
    assert len(span_warnings) == 1, export_warnings
    assert "0 delivered" in span_warnings[0] and "waiting" in span_warnings[0]
    assert len([m for m in export_warnings if "could not export metrics" in m]) <= 1, export_warnings
    # The SDK's own per-batch error lines are not printed on top of ours.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    delivery = runtime.delivery
    assert delivery is not None and delivery.spans_exported == 0
    # Dropped, or still pending if shutdown gave up first: either way counted, none delivered.
    assert delivery.spans_handed == 600 and delivery.spans_dropped + delivery.spans_pending == 600
    assert delivery.balanced
    shutdown_log = [r.getMessage() for r in caplog.records if "could not deliver" in r.getMessage()]
    assert shutdown_log and "600 of 600 spans" in shutdown_log[0], shutdown_log


def test_shutdown_is_bounded_by_default_timeout(blackhole: str) -> None:
    runtime = otelperf.init(service_name="bh", instrument="none", endpoint=blackhole, export_timeout=30)
    assert runtime.tracer is not None
    for _ in range(50):
        with runtime.tracer.start_as_current_span("op"):
            pass
    began = time.monotonic()
    otelperf.shutdown()  # default timeout: 5 s
    assert time.monotonic() - began < 5.0 + 1.0


def test_shutdown_without_init_is_a_no_op() -> None:
    assert otelperf.shutdown() is True


@pytest.mark.parametrize(("detectors", "expected_share"), [(("n_plus_one",), 0.25), ((), None)])
def test_histogram_exemplars_follow_the_export_share_the_pipeline_applies(
    detectors: tuple[str, ...], expected_share: float | None
) -> None:
    from otelperf._share import share_limit

    runtime = otelperf.init(
        service_name="share",
        instrument="none",
        endpoint=f"http://127.0.0.1:{_closed_port()}",
        export_share=0.25,
        detectors=detectors,
    )
    assert runtime.meter is not None
    histogram = runtime.meter.create_histogram("otelperf.test.duration", unit="s")
    if expected_share is None:  # no pipeline, so every trace is exported: exemplars from all
        assert runtime.detector_processor is None
        assert histogram._exemplar_limit is None  # type: ignore[attr-defined]
    else:
        assert runtime.detector_processor is not None
        assert histogram._exemplar_limit == runtime.detector_processor._share_limit == share_limit(0.25)  # type: ignore[attr-defined]
