"""DetectorSpanProcessor: grouping by request, annotation, bounds, export policy, no loss."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from otelperf._runtime import guard as _internal
from otelperf.detectors._api import Finding, TraceView, hex_span_id
from otelperf.detectors._findings import FindingsSink
from otelperf.pipeline.detector_processor import DetectorSpanProcessor


class FlagNamed:
    """Finds every span named 'bad' (anchor: that span)."""

    name = "flag_named"

    def __init__(self) -> None:
        self.seen: list[TraceView] = []

    def analyze(self, view: TraceView) -> list[Finding]:
        self.seen.append(view)
        return [
            Finding(
                "flag_named",
                "warning",
                view.route,
                "f00d",
                s.name,
                1,
                1.0,
                view.trace_id,
                hex_span_id(s),
                (hex_span_id(s),),
                "rename it",
            )
            for s in view.spans
            if s.name == "bad"
        ]


class Broken:
    name = "broken"

    def analyze(self, view: TraceView) -> list[Finding]:
        raise RuntimeError("detector bug")


def _setup(**kwargs: object) -> tuple[TracerProvider, DetectorSpanProcessor, InMemorySpanExporter, FlagNamed]:
    exporter = InMemorySpanExporter()
    detector = FlagNamed()
    detectors = kwargs.pop("detectors", [detector])
    processor = DetectorSpanProcessor(SimpleSpanProcessor(exporter), detectors, FindingsSink(None), **kwargs)  # type: ignore[arg-type]
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider, processor, exporter, detector


@pytest.fixture
def pipeline() -> Iterator[tuple[TracerProvider, DetectorSpanProcessor, InMemorySpanExporter, FlagNamed]]:
    provider, processor, exporter, detector = _setup()
    yield provider, processor, exporter, detector
    provider.shutdown()


def _names(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> list[str]:
    return sorted(s.name for s in spans)


def test_spans_wait_for_their_request_and_findings_become_events(pipeline) -> None:  # type: ignore[no-untyped-def]
    provider, processor, exporter, detector = pipeline
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /x"):
        with tracer.start_as_current_span("ok"):
            pass
        with tracer.start_as_current_span("bad"):
            pass
        assert exporter.get_finished_spans() == (), "held until the request ends"
    assert processor.force_flush(5000)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert _names(list(spans.values())) == ["GET /x", "bad", "ok"]
    [event] = spans["bad"].events
    assert event.name == "otelperf.finding"
    assert event.attributes["otelperf.finding.detector"] == "flag_named"
    assert event.attributes["otelperf.finding.hint"] == "rename it"
    # The spans it concerns, for the waterfalls (otelperf trace, the HTML report) to highlight.
    assert list(event.attributes["otelperf.finding.span_ids"]) == [hex_span_id(spans["bad"])]
    assert spans["GET /x"].attributes["otelperf.findings.count"] == 1
    assert list(spans["GET /x"].attributes["otelperf.findings.detectors"]) == ["flag_named"]
    assert spans["ok"].events == ()
    assert [v.route for v in detector.seen] == ["GET /x"]
    assert len(detector.seen[0].spans) == 3


def test_a_remote_parent_makes_a_local_root(pipeline) -> None:  # type: ignore[no-untyped-def]
    provider, processor, exporter, detector = pipeline
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /remote", context=ctx), tracer.start_as_current_span("bad"):
        pass
    processor.force_flush(5000)
    assert _names(exporter.get_finished_spans()) == ["GET /remote", "bad"]
    assert detector.seen[0].root.name == "GET /remote"


def test_a_service_calling_itself_analyzes_each_request_with_its_own_spans(pipeline) -> None:  # type: ignore[no-untyped-def]
    """Nested requests of one trace in one process: the inner one must not take the outer's spans."""
    provider, processor, _exporter, detector = pipeline
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /outer") as outer:
        with tracer.start_as_current_span("SELECT products"):
            pass
        for i in range(3):
            with tracer.start_as_current_span(f"GET stock {i}") as client:
                # What the server side sees: the client's context arriving in a traceparent header.
                remote = SpanContext(
                    client.get_span_context().trace_id,
                    client.get_span_context().span_id,
                    is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
                inner_ctx = trace.set_span_in_context(NonRecordingSpan(remote))
                with (
                    tracer.start_as_current_span("GET /internal/stock", context=inner_ctx),
                    tracer.start_as_current_span(f"SELECT stock {i}"),
                ):
                    pass
    processor.force_flush(5000)
    views = [(v.root.name, len(v.spans)) for v in detector.seen]
    seen_by_root: dict[str, list[list[str]]] = {}
    for view in detector.seen:
        seen_by_root.setdefault(view.root.name, []).append(_names(list(view.spans)))
    assert seen_by_root["GET /internal/stock"] == [
        ["GET /internal/stock", f"SELECT stock {i}"] for i in range(3)
    ], views
    assert seen_by_root["GET /outer"] == [
        ["GET /outer", "GET stock 0", "GET stock 1", "GET stock 2", "SELECT products"]
    ]
    assert outer.get_span_context().trace_id == detector.seen[-1].root.context.trace_id


def test_requests_of_plain_spans_sharing_a_trace_are_split_as_sdk_spans_are(pipeline) -> None:  # type: ignore[no-untyped-def]
    """The same split for leaf and request spans (plain ReadableSpans, read by index): an inner
    request ends while the outer one's statements wait in the same trace's buffer."""
    _provider, processor, _exporter, detector = pipeline
    trace_id, sampled = 0xABCDEF, TraceFlags(TraceFlags.SAMPLED)

    def ctx(span_id: int, remote: bool = False) -> SpanContext:
        return SpanContext(trace_id, span_id, is_remote=remote, trace_flags=sampled)

    def end(name: str, span_id: int, parent: SpanContext | None) -> None:
        processor.on_end(ReadableSpan(name, context=ctx(span_id), parent=parent, start_time=1, end_time=2))

    end("SELECT products", 0x11, ctx(0x1))  # the outer request's statement
    end("SELECT stock", 0x21, ctx(0x2))  # the inner request's, under its server span 0x2
    end("GET /internal/stock", 0x2, ctx(0x12, remote=True))  # inner root: its caller is remote
    end("GET stock", 0x12, ctx(0x1))  # the outer request's client span
    end("GET /outer", 0x1, None)
    processor.force_flush(5000)
    assert [(v.root.name, _names(list(v.spans))) for v in detector.seen] == [
        ("GET /internal/stock", ["GET /internal/stock", "SELECT stock"]),
        ("GET /outer", ["GET /outer", "GET stock", "SELECT products"]),
    ]


def test_bounded_open_traces_pass_the_oldest_on_unanalyzed() -> None:
    provider, processor, exporter, _ = _setup(max_traces=2)
    tracer = provider.get_tracer("t")
    roots = [tracer.start_span(f"root{i}") for i in range(3)]
    for i, root in enumerate(roots):
        with tracer.start_as_current_span(f"child{i}", context=trace.set_span_in_context(root)):
            pass
    processor.force_flush(5000)
    assert _names(exporter.get_finished_spans()) == ["child0"], "evicted, not lost"
    assert processor.stats.evicted_traces == 1
    for root in roots:
        root.end()
    processor.force_flush(5000)
    assert len(exporter.get_finished_spans()) == 6
    provider.shutdown()


def test_bounded_spans_per_trace_pass_straight_on() -> None:
    provider, processor, exporter, _ = _setup(max_spans_per_trace=3)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"):
        for i in range(5):
            with tracer.start_as_current_span(f"c{i}"):
                pass
    processor.force_flush(5000)
    assert len(exporter.get_finished_spans()) == 6
    assert processor.stats.overflow_spans == 2
    provider.shutdown()


def test_a_failing_detector_costs_its_findings_not_the_spans() -> None:
    provider, processor, exporter, _flag = _setup(detectors=[Broken(), FlagNamed()])
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /y"), tracer.start_as_current_span("bad"):
        pass
    processor.force_flush(5000)
    errors = _internal.take_internal_errors()
    assert [where for where, _ in errors] == ["detector 'broken'"]
    assert processor.stats.detector_errors == 1
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"GET /y", "bad"}
    assert spans["bad"].events[0].attributes["otelperf.finding.detector"] == "flag_named"
    provider.shutdown()


def test_production_mode_exports_findings_errors_and_a_share() -> None:
    provider, processor, exporter, _ = _setup(export_share=0.0)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /plain"), tracer.start_as_current_span("ok"):
        pass
    with tracer.start_as_current_span("GET /finding"), tracer.start_as_current_span("bad"):
        pass
    with tracer.start_as_current_span("GET /error") as span:
        span.set_status(StatusCode.ERROR)
    processor.force_flush(5000)
    roots = {s.name for s in exporter.get_finished_spans() if s.parent is None}
    assert roots == {"GET /finding", "GET /error"}
    assert processor.stats.not_exported == 2
    assert processor.stats.analyzed == 3
    provider.shutdown()


def test_share_is_decided_by_trace_id() -> None:
    provider, processor, exporter, _ = _setup(export_share=0.5)
    tracer = provider.get_tracer("t")
    for i in range(400):
        with tracer.start_as_current_span(f"GET /{i}"):
            pass
    processor.force_flush(5000)
    kept = exporter.get_finished_spans()
    assert 120 < len(kept) < 280
    limit = (1 << 64) - 1
    assert all((s.context.trace_id & limit) < 0.5 * limit for s in kept)
    provider.shutdown()


def test_shutdown_passes_on_unfinished_requests() -> None:
    provider, _processor, exporter, _ = _setup()
    tracer = provider.get_tracer("t")
    root = tracer.start_span("never ends")
    with tracer.start_as_current_span("child", context=trace.set_span_in_context(root)):
        pass
    provider.shutdown()
    assert _names(exporter.get_finished_spans()) == ["child"]


def test_a_request_queued_after_the_workers_last_look_is_not_lost_at_shutdown() -> None:
    provider, processor, exporter, detector = _setup()
    # The worker has taken its last look (shutdown began) ...
    processor._stopping = True
    processor._wake.set()
    processor._worker.join(timeout=5)
    assert not processor._worker.is_alive()
    # ... and a request ends just then.
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /late"), tracer.start_as_current_span("bad"):
        pass
    provider.shutdown()
    assert _names(exporter.get_finished_spans()) == ["GET /late", "bad"]
    assert [v.route for v in detector.seen] == ["GET /late"]


def test_production_mode_finds_errors_on_plain_readable_spans_as_on_sdk_spans() -> None:
    """Leaf and request spans are plain ReadableSpans, read without their properties, and most carry
    a shared "unset" status: an error on any of them (or an unset status of its own) is still seen."""
    from opentelemetry.trace import Status

    from otelperf._sdk.leaf import UNSET

    _provider, processor, exporter, _ = _setup(export_share=0.0, detectors=[])
    statuses = {
        "shared unset": UNSET,
        "own unset": Status(StatusCode.UNSET),
        "ok": Status(StatusCode.OK),
        "error": Status(StatusCode.ERROR),
        "error with description": Status(StatusCode.ERROR, "boom"),
    }
    for number, (label, status) in enumerate(statuses.items(), start=1):
        root = SpanContext(
            number << 64 | 0xFFFF_FFFF_FFFF_FFFF, number, False, TraceFlags(1)
        )  # outside the share
        child = SpanContext(root.trace_id, 100 + number, False, TraceFlags(1))
        processor.on_end(
            ReadableSpan(label, context=child, parent=root, status=status, start_time=1, end_time=2)
        )
        processor.on_end(ReadableSpan(f"GET /{number}", context=root, status=UNSET, start_time=0, end_time=3))
    processor.force_flush(5000)
    exported = {s.name for s in exporter.get_finished_spans() if s.parent is not None}
    assert exported == {"error", "error with description"}
    assert processor.stats.analyzed == 5
    processor.shutdown()


def test_shutdown_never_runs_detectors_beside_a_worker_still_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detectors run on one thread at a time: when the worker is stuck past the shutdown wait,
    what is still queued is passed on unanalyzed rather than analyzed beside it."""
    import threading

    from otelperf.pipeline import detector_processor as _pipeline

    monkeypatch.setattr(_pipeline, "SHUTDOWN_WAIT_S", 0.2)
    release, inside = threading.Event(), threading.Event()
    threads: list[str] = []

    class Stuck:
        name = "stuck"

        def analyze(self, view: TraceView) -> list[Finding]:
            threads.append(threading.current_thread().name)
            inside.set()
            release.wait(10)
            return []

    provider, processor, exporter, _ = _setup(detectors=[Stuck()])
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /first"):
        pass
    processor._wake.set()
    assert inside.wait(5)  # the worker is inside the first request's analysis, stuck
    with tracer.start_as_current_span("GET /second"):
        pass
    processor.shutdown()
    assert _names(exporter.get_finished_spans()) == ["GET /second"]  # passed on, not lost
    assert threads == ["otelperf-detectors"]  # the second request never reached a detector
    release.set()
    processor._worker.join(5)


class ManySpans:
    """One finding naming 150 spans (an N+1 of 150 statements)."""

    name = "many"

    def analyze(self, view: TraceView) -> list[Finding]:
        ids = tuple(format(i + 1, "016x") for i in range(150))
        root = hex_span_id(view.root)
        return [Finding("many", "warning", view.route, "f", "s", 150, 1.0, view.trace_id, root, ids, "h")]


def test_a_finding_event_lists_at_most_100_span_ids() -> None:
    exporter = InMemorySpanExporter()
    processor = DetectorSpanProcessor(SimpleSpanProcessor(exporter), [ManySpans()], FindingsSink(None))  # type: ignore[list-item]
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("GET /x"):
        pass
    assert processor.force_flush(5000)
    [span] = exporter.get_finished_spans()
    [event] = span.events
    listed = list(event.attributes["otelperf.finding.span_ids"])
    assert listed == [format(i + 1, "016x") for i in range(100)]
    provider.shutdown()
