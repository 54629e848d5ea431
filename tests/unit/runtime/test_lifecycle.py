"""init(); shutdown(); init() with real export to a loopback OTLP sink.

Tracers and meters the application took from the OpenTelemetry API before (or between) the
runtimes keep working: the API's global providers are otelperf's forwarding ones.
"""

from __future__ import annotations

import threading
import time

from opentelemetry import metrics, trace

import otelperf
from otelperf._runtime import global_providers
from otelperf._runtime import setup as _setup
from otelperf.testing import OTLPSink

EXPORT_THREADS = ("otelperf", "OtelBatch", "OtelPeriodicExportingMetricReader")


def _start(sink: OTLPSink) -> _setup.Runtime:
    return otelperf.init(
        service_name="lifecycle",
        instrument="none",
        detectors="none",
        endpoint=sink.endpoint,
        schedule_delay="20ms",
        metric_export_interval="60s",  # metrics are sent by shutdown's final collection
    )


def _names(sink: OTLPSink) -> list[str]:
    return [s.name for s in sink.snapshot()]


def test_api_tracers_and_meters_from_before_follow_init_shutdown_init(
    fresh_globals: None, sink: OTLPSink
) -> None:
    before = trace.get_tracer("app.before")  # before the first init: the API's proxy
    counter = metrics.get_meter("app.before").create_counter("app.before.requests")
    with before.start_as_current_span("no-runtime-yet"):
        pass

    first = _start(sink)
    assert trace.get_tracer_provider() is global_providers.TRACER_PROVIDER
    with before.start_as_current_span("first"):
        pass
    counter.add(1)
    assert otelperf.shutdown(timeout=5) is True
    with before.start_as_current_span("between-runtimes"):  # no runtime: a no-op, not an error
        pass
    between = trace.get_tracer("app.between")
    between_counter = metrics.get_meter("app.between").create_counter("app.between.requests")

    second = _start(sink)
    assert second is not first
    with (
        before.start_as_current_span("second-from-before-tracer"),
        between.start_as_current_span("second-from-between-tracer"),
    ):
        pass
    counter.add(2)
    between_counter.add(5)
    assert otelperf.shutdown(timeout=5) is True

    spans = sink.wait_for_spans(lambda s: len(s) >= 3)
    assert sorted(s.name for s in spans) == [
        "first",
        "second-from-before-tracer",
        "second-from-between-tracer",
    ]
    by_name = {s.name: s for s in spans}
    child, parent = by_name["second-from-between-tracer"], by_name["second-from-before-tracer"]
    assert child.parent_span_id == parent.span_id and child.trace_id == parent.trace_id
    assert first.tracer_provider is not None and second.tracer_provider is not None
    first_id = first.tracer_provider.resource.attributes["service.instance.id"]
    assert by_name["first"].resource["service.instance.id"] == first_id
    # One process, one service.instance.id, whichever runtime sent it.
    assert parent.resource["service.instance.id"] == first_id

    sent = {(m.name, m.points) for m in sink.metrics}
    assert ("app.before.requests", 1) in sent
    assert ("app.between.requests", 1) in sent


def test_decorated_function_uses_the_runtime_running_when_called(fresh_globals: None, sink: OTLPSink) -> None:
    tracer = trace.get_tracer("app.decorated")

    @tracer.start_as_current_span("decorated")
    def work() -> int:
        return 42

    assert work() == 42  # before init: a no-op span
    _start(sink)
    assert otelperf.shutdown(timeout=5)
    _start(sink)
    assert work() == 42
    assert otelperf.shutdown(timeout=5)
    assert sink.wait_for_spans(lambda s: len(s) >= 1) and _names(sink) == ["decorated"]


def test_observable_instruments_are_registered_again_after_reinit(
    fresh_globals: None, sink: OTLPSink
) -> None:
    calls: list[int] = []

    def observe(options: metrics.CallbackOptions) -> list[metrics.Observation]:
        calls.append(1)
        return [metrics.Observation(7)]

    metrics.get_meter("app.gauges").create_observable_gauge("app.queue.depth", [observe])
    _start(sink)
    assert otelperf.shutdown(timeout=5)
    sink.reset()
    _start(sink)
    assert otelperf.shutdown(timeout=5)
    assert "app.queue.depth" in {m.name for m in sink.metrics}


def test_someone_elses_global_provider_is_left_alone(fresh_globals: None, sink: OTLPSink) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    theirs = TracerProvider()
    trace.set_tracer_provider(theirs)
    runtime = _start(sink)
    assert trace.get_tracer_provider() is theirs
    assert runtime.tracer is not None  # otelperf's own spans still use otelperf's provider
    theirs.shutdown()


def _lifecycle_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.is_alive() and t.name.startswith(EXPORT_THREADS))


def test_init_shutdown_twice_leaves_no_threads(fresh_globals: None, sink: OTLPSink) -> None:
    before = _lifecycle_threads()
    for _ in range(2):
        runtime = otelperf.init(service_name="threads", endpoint=sink.endpoint, instrument="none")
        assert runtime.enabled
        assert _lifecycle_threads() != before
        assert otelperf.shutdown(timeout=5) is True
    deadline = time.monotonic() + 5
    while _lifecycle_threads() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _lifecycle_threads() == before
