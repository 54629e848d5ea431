"""OTLP encoding and transport, the byte-bounded retry buffer, delivery accounting.

:func:`build_span_processor` makes otelperf's exporting span processor from the settings;
:class:`DeliveryStats` is what ``Runtime.delivery`` returns: every span delivered, dropped (by
reason) or still on its way. ``docs/delivery.md`` states the guarantees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelperf.export._guard import ExportHealth, GuardedMetricExporter, GuardedSpanExporter
from otelperf.export._stats import DeliveryStats
from otelperf.export.processor import OTLPBatchProcessor

if TYPE_CHECKING:
    from otelperf.config import Settings
    from otelperf.export.transport import Transport

__all__ = [
    "DeliveryStats",
    "ExportHealth",
    "GuardedMetricExporter",
    "GuardedSpanExporter",
    "OTLPBatchProcessor",
    "build_span_processor",
    "build_transport",
]


def build_transport(settings: Settings) -> Transport:
    """The OTLP transport the settings ask for (gRPC needs the ``otelperf[grpc]`` extra)."""
    from otelperf.export.transport import GrpcTransport, HttpTransport

    if settings.protocol == "grpc":
        return GrpcTransport(settings.full_traces_endpoint(), headers=settings.headers)
    return HttpTransport(
        settings.full_traces_endpoint(), headers=settings.headers, pool_size=settings.export_concurrency
    )


def build_span_processor(settings: Settings, transport: Transport | None = None) -> OTLPBatchProcessor:
    """otelperf's exporting span processor, configured from ``settings``.

    >>> from otelperf.config import resolve_settings
    >>> processor = build_span_processor(resolve_settings(retry_buffer="1MiB"))
    >>> processor.stats().buffer_capacity_bytes
    1048576
    >>> processor.shutdown()
    """
    return OTLPBatchProcessor(
        build_transport(settings) if transport is None else transport,
        max_queue_size=settings.max_queue_size,
        max_export_batch_size=settings.max_export_batch_size,
        schedule_delay=settings.schedule_delay,
        retry_buffer=settings.retry_buffer,
        export_concurrency=settings.export_concurrency,
        export_timeout=settings.export_timeout,
        shutdown_timeout=settings.shutdown_timeout,
    )
