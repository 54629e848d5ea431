"""Exporters wrapped so that an unreachable collector never troubles the application.

The SDK's OTLP exporters log an error for every failed batch. With the collector down that is a
line per second, forever. otelperf takes those records (without printing them), keeps the last
reason, and logs one clear warning at most once a minute, with a count of what was dropped.

Used for metrics (the SDK's OTLP metric exporter) and for spans only on the paths that keep an SDK
span processor (``simple_processor``); otelperf's default span export is
:class:`otelperf.export.OTLPBatchProcessor`, which does its own accounting and warnings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otelperf._runtime.guard import RateLimitedWarning

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

logger = logging.getLogger("otelperf.export")

# Loggers the OTLP exporters and the SDK's batch worker report failures on.
_SDK_EXPORT_LOGGERS = (
    "opentelemetry.exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)


class _LastReason(logging.Handler):
    """Remembers the most recent failure message instead of printing it."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.last = record.getMessage()[:300]
        except Exception:
            self.last = str(record.msg)[:300]


_inside = threading.local()  # set while this thread runs a guarded export


class _InsideGuardedExport(logging.Filter):
    """Drops the SDK's records emitted inside a guarded export, even one that outlives shutdown
    (an abandoned metric export retrying after ``release_sdk_logs``): the guard reports instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        health = getattr(_inside, "health", None)
        if health is None:
            return True
        health._reasons.emit(record)
        return False


_FILTER = _InsideGuardedExport()
# Logger filters apply only where a record is created (not on propagation): the emitting modules.
_SDK_EXPORTER_MODULE_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
)


class ExportHealth:
    """Counts exported and dropped items; owns the once-a-minute warning."""

    def __init__(self) -> None:
        self.spans_exported = 0
        self.spans_dropped = 0
        self.metric_exports_failed = 0
        self._lock = threading.Lock()
        self._warning = RateLimitedWarning(logger, 60.0)
        self._reasons = _LastReason()
        self._saved: list[tuple[logging.Logger, bool, list[logging.Handler]]] = []

    def capture_sdk_logs(self) -> None:
        for name in (*_SDK_EXPORT_LOGGERS, *_SDK_EXPORTER_MODULE_LOGGERS):
            log = logging.getLogger(name)
            if _FILTER not in log.filters:
                log.addFilter(_FILTER)
        for name in _SDK_EXPORT_LOGGERS:
            log = logging.getLogger(name)
            self._saved.append((log, log.propagate, list(log.handlers)))
            log.addHandler(self._reasons)
            log.propagate = False

    def release_sdk_logs(self) -> None:
        for log, propagate, _ in self._saved:
            log.removeHandler(self._reasons)
            log.propagate = propagate
        self._saved.clear()

    def failed(self, what: str, endpoint: str, count: int) -> None:
        reason = self._reasons.last or "no reason given"
        self._warning.warn(
            "otelperf could not export %s to %s (%s); the application is unaffected, that telemetry is "
            "dropped. Is the collector running? (`otelperf doctor` checks)",
            what if count <= 0 else f"{count} {what}",
            endpoint,
            reason,
        )


class GuardedSpanExporter(SpanExporter):
    """Delegates to the OTLP span exporter; never raises, counts, rate-limits its warnings."""

    def __init__(self, inner: SpanExporter, endpoint: str, health: ExportHealth) -> None:
        self._inner = inner
        self._endpoint = endpoint
        self._health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _inside.health = self._health
        try:
            result = self._inner.export(spans)
        except Exception as exc:
            self._health._reasons.last = repr(exc)
            result = SpanExportResult.FAILURE
        finally:
            _inside.health = None
        with self._health._lock:
            if result is SpanExportResult.SUCCESS:
                self._health.spans_exported += len(spans)
            else:
                self._health.spans_dropped += len(spans)
        if result is not SpanExportResult.SUCCESS:
            self._health.failed("spans", self._endpoint, len(spans))
        return result

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception:
            logger.debug("span exporter shutdown failed", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis)
        except Exception:
            return False


class GuardedMetricExporter(MetricExporter):
    """Delegates to the OTLP metric exporter; never raises, rate-limits its warnings."""

    def __init__(self, inner: MetricExporter, endpoint: str, health: ExportHealth) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._endpoint = endpoint
        self._health = health

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        _inside.health = self._health
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._health._reasons.last = repr(exc)
            result = MetricExportResult.FAILURE
        finally:
            _inside.health = None
        if result is not MetricExportResult.SUCCESS:
            with self._health._lock:
                self._health.metric_exports_failed += 1
            self._health.failed("metrics", self._endpoint, 0)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis=timeout_millis)
        except Exception:
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
        except Exception:
            logger.debug("metric exporter shutdown failed", exc_info=True)
