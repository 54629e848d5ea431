"""Builds the OpenTelemetry pipeline for otelperf: Resource, providers, exporters, instrumentation.

``init()`` is idempotent and thread-safe: a second call (or a concurrent one, or one under
``opentelemetry-instrument``) returns the running pipeline instead of building another, so every
operation still yields exactly one span. Providers are handed to the instrumentation explicitly;
for the application's own spans and metrics the API's global providers are set, when nobody else
set them first, to otelperf's forwarding providers (``_runtime/global_providers.py``), which follow
``init(); shutdown(); init()`` and forks (``_runtime/fork.py``).

Neither ``init()`` nor ``shutdown()`` raises into the application outside strict mode: settings are
range-checked by :mod:`otelperf.config`, and a pipeline that still cannot be built leaves one
warning and a disabled runtime.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer

from otelperf import _names, redaction
from otelperf._runtime import exit_logging, fork, global_providers
from otelperf._runtime import guard as _internal
from otelperf._runtime import sigterm as _sigterm
from otelperf._sdk import fast_paths
from otelperf._version import __version__
from otelperf.config import BOUNDS, ConfigError, Settings, resolve_settings
from otelperf.detectors._findings import FindingsSink
from otelperf.export import (
    DeliveryStats,
    ExportHealth,
    GuardedMetricExporter,
    GuardedSpanExporter,
    OTLPBatchProcessor,
    build_span_processor,
)
from otelperf.instrumentation._base import (
    InstrumentationResult,
    InstrumentContext,
    Instrumentor,
    check_supported,
    load_instrumentor,
)
from otelperf.pipeline.detector_processor import DetectorSpanProcessor
from otelperf.pipeline.fast_histograms import FastMeter, FastMetrics
from otelperf.redaction.span_filter import ScrubbingSpanExporter

logger = logging.getLogger("otelperf")

_lock = threading.RLock()
_runtime: Runtime | None = None
_atexit_registered = False


@dataclass
class Runtime:
    """The running otelperf pipeline in this process (what :func:`otelperf.init` returns)."""

    settings: Settings
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    tracer: Tracer | None = None
    meter: Meter | None = None
    health: ExportHealth = field(default_factory=ExportHealth)
    instrumentations: dict[str, InstrumentationResult] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)
    findings: FindingsSink | None = None
    detector_processor: DetectorSpanProcessor | None = None
    span_processor: OTLPBatchProcessor | None = None  # otelperf's OTLP exporting processor
    profiler: Any = None  # otelperf.profiler.Profiler while the profiler setting is on
    _instrumentors: list[Instrumentor] = field(default_factory=list, repr=False)

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None

    def fast_paths(self) -> list[tuple[str, bool, str]]:
        """``(fast path, on, why)`` for otelperf's fast paths around the SDK, as of now (a processor
        added to the provider since init is taken into account)."""
        from otelperf._sdk import describe

        return describe(self.tracer)

    @property
    def delivery(self) -> DeliveryStats | None:
        """Span delivery figures (delivered, dropped by reason, buffered), when otelperf exports."""
        return None if self.span_processor is None else self.span_processor.stats()


def build_sampler(settings: Settings) -> Sampler:
    name, arg = settings.sampler, settings.sampler_arg
    base: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(arg),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(TraceIdRatioBased(arg)),
    }
    return base[name]


def build_resource(settings: Settings) -> Resource:
    attributes: dict[str, Any] = dict(settings.resource_attributes)
    attributes["service.name"] = settings.service_name
    if settings.sources.get("service_name") == "default" and "service.name" in settings.resource_attributes:
        attributes["service.name"] = settings.resource_attributes["service.name"]
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    attributes["process.pid"] = os.getpid()
    # One id per process (semconv service.instance.id), so replicas and forked workers of a service
    # are told apart; a forked child gets its own (fork.py). The user's own value wins.
    attributes.setdefault("service.instance.id", fork.process_instance_id())
    attributes["otelperf.version"] = __version__
    # Resource.create adds telemetry.sdk.* and the host/process detectors; ours win on merge.
    return Resource.create({}).merge(Resource(attributes))


def _span_exporter(settings: Settings) -> SpanExporter:
    if settings.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError as exc:
            raise ImportError("OTLP over gRPC needs: pip install 'otelperf[grpc]'") from exc
        return GrpcExporter(
            endpoint=settings.full_traces_endpoint(),
            headers=dict(settings.headers),
            timeout=settings.export_timeout,
            insecure=settings.endpoint.startswith("http://"),
        )
    # OTLP/HTTP: otelperf's own exporter, whose encoder costs a fraction of the SDK's per span.
    from otelperf.export.otlp_http import FastOTLPSpanExporter

    return FastOTLPSpanExporter(
        settings.full_traces_endpoint(), headers=settings.headers, timeout=settings.export_timeout
    )


def _metric_exporter(settings: Settings) -> Any:
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return GrpcExporter(
            endpoint=settings.full_metrics_endpoint(),
            headers=dict(settings.headers),
            timeout=settings.export_timeout,
            insecure=settings.endpoint.startswith("http://"),
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(
        endpoint=settings.full_metrics_endpoint(),
        headers=dict(settings.headers),
        timeout=settings.export_timeout,
    )


def _instrument_all(runtime: Runtime) -> None:
    settings = runtime.settings
    assert runtime.tracer is not None and runtime.meter is not None
    ctx = InstrumentContext(tracer=runtime.tracer, meter=runtime.meter, settings=settings)
    explicit = settings.sources.get("instrument", "default") != "default"
    for name in settings.instrument:
        result = check_supported(name)
        if result is None:
            try:
                instrumentor = load_instrumentor(name)
                instrumentor.instrument(ctx)
                runtime._instrumentors.append(instrumentor)
                from otelperf.instrumentation._base import installed_version

                result = InstrumentationResult(name, "instrumented", installed_version(name))
            except Exception as exc:
                result = InstrumentationResult(name, "failed", None, repr(exc))
                logger.warning("otelperf could not instrument %s: %r", name, exc, exc_info=True)
        elif explicit:
            # Asked for by name: say why it did not happen. Defaults stay silent.
            logger.warning("otelperf did not instrument %s: %s", name, result.detail)
        runtime.instrumentations[name] = result


def start(
    settings: Settings,
    *,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    simple_processor: bool = False,
    set_global: bool = True,
) -> Runtime:
    """Build and install the pipeline. Callers hold ``_lock`` and know no runtime is running."""
    runtime = Runtime(settings=settings)
    if settings.disabled:
        logger.info("otelperf is disabled (OTEL_SDK_DISABLED / OTELPERF_DISABLED): no telemetry is produced")
        return runtime

    fast_paths.force_off(not settings.sdk_fast_paths or fast_paths.env_forced_off())
    resource = build_resource(settings)
    health = runtime.health
    processor: SpanProcessor
    if span_exporter is None:
        health.capture_sdk_logs()
    if span_exporter is not None:
        # The export-side safety net for exception text (otelperf's own processor applies it
        # before encoding): what a caller's exporter receives is what would leave the process.
        span_exporter = ScrubbingSpanExporter(span_exporter)
    if span_exporter is None and not simple_processor:
        # otelperf's own: concurrent exports, a retry buffer bounded in bytes, every span counted.
        runtime.span_processor = processor = build_span_processor(settings)
    elif simple_processor:
        exporter: SpanExporter = span_exporter or ScrubbingSpanExporter(
            GuardedSpanExporter(_span_exporter(settings), settings.full_traces_endpoint(), health)
        )
        processor = SimpleSpanProcessor(exporter)
    else:
        assert span_exporter is not None
        processor = BatchSpanProcessor(
            span_exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.schedule_delay * 1000,
            max_export_batch_size=min(settings.max_export_batch_size, settings.max_queue_size),
            export_timeout_millis=settings.export_timeout * 1000,
        )
    if settings.detectors:
        version = resource.attributes.get(_names.SERVICE_VERSION)
        runtime.findings = FindingsSink(None, service_version=str(version) if version else None)
        runtime.detector_processor = DetectorSpanProcessor(
            processor,
            [],
            runtime.findings,
            export_share=settings.export_share,
            expected=settings.expected_findings,
        )
        processor = runtime.detector_processor
    tracer_provider = TracerProvider(
        resource=resource, sampler=build_sampler(settings), shutdown_on_exit=False
    )
    tracer_provider.add_span_processor(processor)

    if metric_readers is None:
        metric_readers = [
            PeriodicExportingMetricReader(
                GuardedMetricExporter(_metric_exporter(settings), settings.full_metrics_endpoint(), health),
                export_interval_millis=settings.metric_export_interval * 1000,
                export_timeout_millis=settings.export_timeout * 1000,
            )
        ]
    meter_provider = MeterProvider(
        resource=resource, metric_readers=list(metric_readers), shutdown_on_exit=False
    )

    runtime.tracer_provider = tracer_provider
    runtime.meter_provider = meter_provider
    runtime.tracer = tracer_provider.get_tracer(_names.INSTRUMENTATION_SCOPE, __version__)
    # Histograms on the request path are aggregated by otelperf (10x cheaper than the SDK's) and
    # added to every reader's collections, so exporters see one set of metrics.
    # In production mode their exemplars come from exported traces only (the export share).
    fast = FastMetrics(
        resource,
        InstrumentationScope(_names.INSTRUMENTATION_SCOPE, __version__),
        exemplar_share=settings.export_share if runtime.detector_processor is not None else 1.0,
    )
    for reader in metric_readers:
        fast.attach(reader)
    runtime.meter = FastMeter(meter_provider.get_meter(_names.INSTRUMENTATION_SCOPE, __version__), fast)
    if runtime.span_processor is not None:
        from otelperf.export._metrics import register_delivery_metrics

        register_delivery_metrics(
            meter_provider.get_meter(_names.INSTRUMENTATION_SCOPE, __version__), runtime.span_processor
        )

    if runtime.detector_processor is not None and runtime.findings is not None:
        from otelperf.detectors._registry import build_detectors

        runtime.findings.bind_meter(runtime.meter)
        runtime.detector_processor.set_detectors(build_detectors(settings, runtime.meter))
    if set_global:
        _set_global_providers(tracer_provider, meter_provider)
    _start_profiler(runtime)
    _instrument_all(runtime)
    return runtime


def _start_profiler(runtime: Runtime) -> None:
    """The sampling profiler, when it has something to report to (the latency-budget detector).
    Its thread starts with the first request it follows, so an init() that serves none pays little."""
    settings = runtime.settings
    if not settings.profiler or "latency_budget" not in settings.detectors:
        return
    from otelperf import profiler

    runtime.profiler = profiler.Profiler(hz=settings.profiler_hz)
    profiler.install(runtime.profiler)


def _stop_profiler(runtime: Runtime) -> None:
    if runtime.profiler is not None:
        from otelperf import profiler

        profiler.uninstall(runtime.profiler)


def _set_global_providers(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    # The API's globals are set once per process, to forwarding providers; each runtime that starts
    # becomes what they forward to (see _runtime/global_providers.py).
    global_providers.activate(tracer_provider, meter_provider)
    global_providers.install_globals()


def init(**kwargs: Any) -> Runtime:
    """Start otelperf in this process (see :func:`otelperf.init` for the documented signature)."""
    global _runtime, _atexit_registered
    with _lock:
        if _runtime is not None:
            if kwargs:
                wanted = resolve_settings(**kwargs)
                if wanted != _runtime.settings:
                    logger.warning(
                        "otelperf.init() was already called in this process; keeping the first settings "
                        "(call otelperf.shutdown() first to change them)"
                    )
            return _runtime
        settings = resolve_settings(**kwargs)  # ConfigError only in strict mode
        redaction.configure(settings)  # process-wide, before anything is instrumented
        # Before the first pipeline exists: the child's hook must run before those of its parts.
        fork.register()
        _runtime = start_or_disable(settings)
        if not _atexit_registered:
            _register_exit_flush()
            _atexit_registered = True
        if settings.flush_on_sigterm and _runtime.enabled:
            _sigterm.install(shutdown, settings.shutdown_timeout + 1.0)
        return _runtime


def start_or_disable(settings: Settings) -> Runtime:
    """:func:`start`, or a disabled runtime and one warning when the pipeline cannot be built."""
    try:
        return start(settings)
    except ImportError as exc:  # an extra the settings need is not installed: configuration, not a bug
        if settings.strict:
            raise ConfigError(str(exc)) from exc
        logger.warning("otelperf could not start (%s); the application runs without telemetry", exc)
    except Exception as exc:
        if settings.strict:
            raise
        # A bug of otelperf's: one warning in production, re-raised under pytest.
        _internal.swallow("init", exc)
    return Runtime(settings=settings)


def current() -> Runtime | None:
    return _runtime


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` the process's otelperf runtime (used by the pytest plugin)."""
    global _runtime
    with _lock:
        _runtime = runtime


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop; return True when everything finished within ``timeout`` seconds.

    Never raises: a timeout that is negative, NaN or larger than the ``shutdown_timeout`` bound
    (600 s) is clamped, since ``Thread.join`` overflows on huge ones.
    """
    global _runtime
    try:
        with _lock:
            runtime, _runtime = _runtime, None
        if runtime is None:
            return True
        if runtime.tracer_provider is not None:
            global_providers.deactivate(runtime.tracer_provider)
        _sigterm.uninstall()
        return stop(runtime, bounded_timeout(timeout, runtime.settings.shutdown_timeout))
    except Exception as exc:
        _internal.swallow("shutdown", exc)
        return False


def bounded_timeout(timeout: float | None, default: float) -> float:
    """``timeout`` (seconds) within the bounds of the ``shutdown_timeout`` setting; ``default`` for
    None or a value that is not a number."""
    bounds = BOUNDS["shutdown_timeout"]
    try:
        value = float(default if timeout is None else timeout)
    except (TypeError, ValueError, OverflowError):
        value = default
    if math.isnan(value):
        value = default
    return float(min(max(value, bounds.low), bounds.high))


def stop(runtime: Runtime, timeout: float) -> bool:
    try:
        return _stop(runtime, timeout)
    finally:
        # Last: the detectors drain the final requests at shutdown, and take their samples then.
        _stop_profiler(runtime)


def _stop(runtime: Runtime, timeout: float) -> bool:
    for instrumentor in reversed(runtime._instrumentors):
        try:
            instrumentor.uninstrument()
        except Exception:
            logger.warning("otelperf could not uninstrument %s", instrumentor.name, exc_info=True)
    runtime._instrumentors.clear()
    if not runtime.enabled:
        return True

    def _stop_providers() -> None:
        for provider in (runtime.tracer_provider, runtime.meter_provider):
            try:
                if provider is not None:
                    provider.shutdown()
            except Exception:
                logger.debug("provider shutdown failed", exc_info=True)

    if runtime.span_processor is not None:
        # Spans get most of the deadline; the final metric export (with the delivery figures) the rest.
        runtime.span_processor.shutdown_deadline = time.monotonic() + timeout * 0.8
    # The SDK's shutdown can wait on a collector that accepts and never answers: do it on a
    # daemon thread and stop waiting at the deadline, so the host process can always exit.
    worker = threading.Thread(target=_stop_providers, name="otelperf-shutdown", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        # Leave the SDK's loggers captured: the abandoned export would otherwise print its retries.
        logger.warning("otelperf.shutdown() gave up after %.1fs; unexported telemetry is dropped", timeout)
        _report_undelivered(runtime)
        return False
    runtime.health.release_sdk_logs()
    return _report_undelivered(runtime)


def _report_undelivered(runtime: Runtime) -> bool:
    """Log the spans this process could not deliver; True when there were none."""
    stats = runtime.delivery
    if stats is None or stats.spans_dropped + stats.spans_pending == 0:
        return True
    logger.warning(
        "otelperf could not deliver %d of %d spans to %s (dropped: %s; still pending: %d); last error: %s",
        stats.spans_dropped + stats.spans_pending,
        stats.spans_handed,
        stats.endpoint,
        stats.describe_drops(),
        stats.spans_pending,
        stats.last_error or "none",
    )
    return False


def _register_exit_flush() -> None:
    atexit.register(_shutdown_at_exit)
    # multiprocessing children (uvicorn --workers, --reload) leave through os._exit(), which skips
    # atexit; multiprocessing's own exit hook still runs its finalizers, so flush from there too.
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _shutdown_at_exit, exitpriority=100)
    # A child that multiprocessing forks clears the finalizers it inherited, then runs these.
    multiprocessing.util.register_after_fork(_EXIT_FLUSH_OWNER, _register_child_exit_flush)


class _ExitFlushOwner:
    """What multiprocessing's after-fork registry holds (weakly) for the exit flush."""


_EXIT_FLUSH_OWNER = _ExitFlushOwner()


def _register_child_exit_flush(_: object) -> None:
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _shutdown_at_exit, exitpriority=100)


def _shutdown_at_exit() -> None:
    # The interpreter is ending: the streams a logging handler writes to may be closed already
    # (pytest's capture, a closed stderr), and the telemetry threads may still log after this.
    exit_logging.guard_closed_streams()
    with contextlib.suppress(Exception):
        shutdown()
