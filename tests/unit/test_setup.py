"""init()/shutdown(): idempotency, OTEL_SDK_DISABLED, and an unreachable collector."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import otelperf
from otelperf._runtime import setup as _setup

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
    from otelperf.pipeline.share import share_limit

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


# --- issue 12: settings that pass validation must not crash init() or shutdown() ---


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_BSP_SCHEDULE_DELAY", "0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ("OTELPERF_SCHEDULE_DELAY", "0s"),
        ("OTELPERF_MAX_QUEUE_SIZE", "99999999999999999999"),
        ("OTELPERF_SHUTDOWN_TIMEOUT", "1e12"),
        ("OTELPERF_EXPORT_TIMEOUT", "0"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "nan"),
        ("OTELPERF_METRIC_EXPORT_INTERVAL", "inf"),
    ],
)
def test_out_of_range_settings_warn_and_the_pipeline_runs(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING, logger="otelperf.config"):
        runtime = otelperf.init(
            service_name="bounds", instrument="none", endpoint=f"http://127.0.0.1:{_closed_port()}"
        )
    assert runtime.enabled
    [warning] = [r.getMessage() for r in caplog.records if r.name == "otelperf.config"]
    assert f"{variable}={value!r}" in warning and "using the default" in warning
    assert runtime.tracer is not None
    with runtime.tracer.start_as_current_span("still-works"):
        pass
    assert isinstance(otelperf.shutdown(timeout=2), bool)


@pytest.mark.parametrize("timeout", [1e12, float("inf"), float("nan"), -1.0, 0.0, 10**400])
def test_shutdown_never_raises_whatever_the_timeout(timeout: float) -> None:
    otelperf.init(
        service_name="timeouts",
        instrument="none",
        endpoint=f"http://127.0.0.1:{_closed_port()}",
        export_timeout=0.2,
    )
    assert isinstance(otelperf.shutdown(timeout=timeout), bool)
    assert _setup.current() is None


def test_bounded_timeout_clamps_to_the_shutdown_timeout_bounds() -> None:
    assert _setup.bounded_timeout(None, 5.0) == 5.0
    assert _setup.bounded_timeout(1e12, 5.0) == 600.0
    assert _setup.bounded_timeout(float("nan"), 5.0) == 5.0
    assert _setup.bounded_timeout(-3, 5.0) == 0.0
    assert _setup.bounded_timeout("soon", 5.0) == 5.0  # type: ignore[arg-type]


def _broken_start(settings: object, **kwargs: object) -> _setup.Runtime:
    raise RuntimeError("boom while building the pipeline")


def test_a_pipeline_that_cannot_be_built_leaves_a_disabled_runtime_and_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from otelperf._runtime import guard as _internal

    monkeypatch.setattr(_setup, "start", _broken_start)
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # production: the guard logs instead of raising
    with caplog.at_level(logging.WARNING, logger="otelperf"):
        runtime = otelperf.init(service_name="broken", instrument="none")
    assert runtime.enabled is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "boom while building the pipeline" in warnings[0], warnings
    assert [where for where, _ in _internal.take_internal_errors()] == ["init"]
    assert otelperf.shutdown() is True


def test_a_pipeline_bug_is_raised_under_pytest_and_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from otelperf._runtime import guard as _internal

    monkeypatch.setattr(_setup, "start", _broken_start)
    with pytest.raises(RuntimeError, match="boom"):
        otelperf.init(service_name="broken", instrument="none")
    _internal.take_internal_errors()
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    with pytest.raises(RuntimeError, match="boom"):
        otelperf.init(service_name="broken", instrument="none", strict=True)
    assert _setup.current() is None


def test_a_missing_extra_is_configuration_not_a_bug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # grpcio not installed: `import grpc` raises ImportError (None in sys.modules does that).
    monkeypatch.setitem(sys.modules, "grpc", None)
    with caplog.at_level(logging.WARNING, logger="otelperf"):
        runtime = otelperf.init(service_name="no-grpc", instrument="none", protocol="grpc")
    assert runtime.enabled is False  # even under pytest: not raised
    assert any("pip install 'otelperf[grpc]'" in r.getMessage() for r in caplog.records)
    otelperf.shutdown()
    with pytest.raises(otelperf.ConfigError, match="otelperf\\[grpc\\]"):
        otelperf.init(service_name="no-grpc", instrument="none", protocol="grpc", strict=True)


def test_service_instance_id_is_one_uuid_per_process_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    first = otelperf.init(service_name="ids", instrument="none")
    assert first.tracer_provider is not None
    generated = str(first.tracer_provider.resource.attributes["service.instance.id"])
    assert str(uuid.UUID(generated)) == generated
    otelperf.shutdown(timeout=2)
    again = otelperf.init(service_name="ids", instrument="none")
    assert again.tracer_provider is not None
    assert again.tracer_provider.resource.attributes["service.instance.id"] == generated
    otelperf.shutdown(timeout=2)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    mine = otelperf.init(service_name="ids", instrument="none")
    assert mine.tracer_provider is not None
    assert mine.tracer_provider.resource.attributes["service.instance.id"] == "pod-7"
