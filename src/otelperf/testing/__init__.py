"""A pytest plugin (registered as ``otelperf``) that captures spans and metrics in memory.

    def test_orders(otelperf_capture, client):
        client.get("/orders/1")
        assert otelperf_capture.spans_named("GET /orders/{id}")

The fixture starts otelperf with in-memory exporters, synchronous span export and the same
instrumentation a real ``otelperf.init()`` uses, and tears all of it down afterwards. An autouse
fixture fails any test during which otelperf swallowed an internal error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from otelperf._runtime import guard as _internal

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otelperf._runtime import setup as _setup
    from otelperf.detectors._api import Finding
    from otelperf.testing.otlp_sink import OTLPSink, SinkMetric, SinkSpan

__all__ = ["Capture", "OTLPSink", "SinkMetric", "SinkSpan", "capture", "otelperf_capture", "stop_capture"]

# This plugin is loaded in every pytest session of a project that has otelperf installed: beyond
# what the autouse fixture needs, everything is imported on first use.
_SINK_NAMES = ("OTLPSink", "SinkMetric", "SinkSpan")


def __getattr__(name: str) -> Any:
    if name in _SINK_NAMES:
        from otelperf.testing import otlp_sink

        value = getattr(otlp_sink, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'otelperf.testing' has no attribute {name!r}")


class Capture:
    """Spans and metrics recorded while the capture is active."""

    def __init__(self, runtime: _setup.Runtime, exporter: InMemorySpanExporter, reader: InMemoryMetricReader):
        self.runtime = runtime
        self.exporter = exporter
        self.reader = reader

    def flush(self) -> None:
        """Wait until the detectors have passed every finished request on to the exporter."""
        provider = self.runtime.tracer_provider
        if provider is not None:
            provider.force_flush(10_000)

    @property
    def spans(self) -> list[ReadableSpan]:
        """Finished spans (of finished requests), in the order they were exported."""
        self.flush()
        return list(self.exporter.get_finished_spans())

    @property
    def findings(self) -> list[Finding]:
        """What the detectors found so far, oldest first."""
        self.flush()
        sink = self.runtime.findings
        return sink.recent() if sink is not None else []

    # --- assertions for tests of a service (they fail with the finding's summary) ---
    # Expected findings (otelperf.expect(), [[expected]] in otelperf.toml) never fail them.

    def assert_no_n_plus_one(self) -> None:
        found = [f for f in self.findings if f.detector == "n_plus_one" and f.expected is None]
        assert not found, "N+1 queries: " + "; ".join(f.summary() for f in found)

    def assert_no_findings(self, *detectors: str) -> None:
        """No unexpected finding (of the given detectors, else of any)."""
        found = [
            f for f in self.findings if f.expected is None and (not detectors or f.detector in detectors)
        ]
        assert not found, "findings: " + "; ".join(f.summary() for f in found)

    def assert_max_queries(self, limit: int, route: str | None = None) -> None:
        """At most ``limit`` database statements (in requests named ``route``, if given)."""
        from otelperf.detectors._api import component_of

        spans = self.spans
        if route is not None:
            roots = {s.context.trace_id for s in spans if s.name == route and s.context is not None}
            spans = [s for s in spans if s.context is not None and s.context.trace_id in roots]
        queries = [s for s in spans if component_of(s) == "db"]
        assert len(queries) <= limit, f"{len(queries)} database statements (limit {limit}): " + ", ".join(
            sorted({s.name for s in queries})
        )

    def assert_within_budget(self, route: str) -> None:
        """No latency-budget finding for ``route`` (budgets: ``capture(budgets={...})``)."""
        found = [
            f
            for f in self.findings
            if f.detector == "latency_budget" and f.route == route and f.expected is None
        ]
        assert not found, "over budget: " + "; ".join(f.summary() for f in found)

    def spans_named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def spans_where(self, **attributes: Any) -> list[ReadableSpan]:
        """Spans whose attributes include every given key=value (use '__' for '.': db__system__name)."""
        wanted = {k.replace("__", "."): v for k, v in attributes.items()}
        return [s for s in self.spans if all((s.attributes or {}).get(k) == v for k, v in wanted.items())]

    def children_of(self, parent: ReadableSpan) -> list[ReadableSpan]:
        pid = parent.context.span_id
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == pid]

    def clear(self) -> None:
        """Forget what was captured so far (after letting in-flight requests through)."""
        self.flush()
        self.exporter.clear()
        if self.runtime.findings is not None:
            self.runtime.findings.clear()

    def metric_points(self, name: str) -> list[Any]:
        """Every data point of metric ``name`` collected now (cumulative)."""
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        if data is None:
            return points
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def capture(**settings: Any) -> Capture:
    """Start otelperf with in-memory exporters; call ``stop_capture`` when done."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otelperf import redaction
    from otelperf._runtime import setup as _setup
    from otelperf.config import resolve_settings

    if _setup.current() is not None:
        raise RuntimeError("otelperf is already running in this process; otelperf_capture needs it stopped")
    settings.setdefault("service_name", "otelperf-test")
    resolved = resolve_settings(environ={}, **settings)
    redaction.configure(resolved)  # as otelperf.init() does: the redaction settings are process-wide
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    runtime = _setup.start(
        resolved, span_exporter=exporter, metric_readers=[reader], simple_processor=True, set_global=False
    )
    _setup.install(runtime)
    return Capture(runtime, exporter, reader)


def stop_capture(cap: Capture) -> None:
    from otelperf._runtime import setup as _setup

    _setup.install(None)
    _setup.stop(cap.runtime, timeout=5.0)


@pytest.fixture
def otelperf_capture() -> Iterator[Capture]:
    """Capture otelperf's spans and metrics in memory for one test."""
    cap = capture()
    try:
        yield cap
    finally:
        stop_capture(cap)


@pytest.fixture(autouse=True)
def _otelperf_fail_on_internal_errors() -> Iterator[None]:
    _internal.take_internal_errors()
    yield
    errors = _internal.take_internal_errors()
    if errors:
        where, exc = errors[0]
        pytest.fail(f"otelperf swallowed {len(errors)} internal error(s); first in {where}: {exc!r}")
