"""The delivery figures as the OpenTelemetry SDK self-metrics (semantic conventions ``otel.sdk.*``).

Observable instruments on the application's MeterProvider: their callbacks read the processor's
counters when the metric reader collects (every export interval), never on the request path.
Prometheus (through the collector) shows them as ``otel_sdk_processor_span_processed_total``,
``otel_sdk_exporter_span_exported_total`` etc., labelled ``error_type`` and ``service_name``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otelperf import _names

if TYPE_CHECKING:
    from otelperf.export.processor import OTLPBatchProcessor

__all__ = ["register_delivery_metrics"]

ERROR_TYPE = _names.ERROR_TYPE


def register_delivery_metrics(meter: Meter, processor: OTLPBatchProcessor) -> None:
    """Create the ``otel.sdk.*`` span delivery instruments, reading ``processor``'s counters."""
    proc_attrs = {
        _names.OTEL_COMPONENT_TYPE: "batching_span_processor",
        _names.OTEL_COMPONENT_NAME: "batching_span_processor/0",
    }
    exp_attrs = {
        _names.OTEL_COMPONENT_TYPE: processor.component_type,
        _names.OTEL_COMPONENT_NAME: f"{processor.component_type}/0",
    }

    def processed(options: CallbackOptions) -> Iterable[Observation]:
        ok, drops, *_ = processor.metric_values()
        yield Observation(ok, proc_attrs)
        for reason, n in drops.items():
            yield Observation(n, {**proc_attrs, ERROR_TYPE: reason})

    def queue_size(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(processor.metric_values()[2], proc_attrs)

    def queue_capacity(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(processor.stats().queue_capacity, proc_attrs)

    def exported(options: CallbackOptions) -> Iterable[Observation]:
        _, _, _, ok, drops, _ = processor.metric_values()
        yield Observation(ok, exp_attrs)
        for reason, n in drops.items():
            yield Observation(n, {**exp_attrs, ERROR_TYPE: reason})

    def inflight(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(processor.metric_values()[5], exp_attrs)

    def buffer_size(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(processor.stats().buffered_bytes, exp_attrs)

    def buffer_capacity(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(processor.stats().buffer_capacity_bytes, exp_attrs)

    meter.create_observable_counter(
        _names.METRIC_SDK_PROCESSOR_SPAN_PROCESSED,
        [processed],
        unit="{span}",
        description="The number of spans for which the processing has finished, either successful or failed.",
    )
    meter.create_observable_up_down_counter(
        _names.METRIC_SDK_PROCESSOR_QUEUE_SIZE,
        [queue_size],
        unit="{span}",
        description="The number of spans in the queue of the span processor.",
    )
    meter.create_observable_up_down_counter(
        _names.METRIC_SDK_PROCESSOR_QUEUE_CAPACITY,
        [queue_capacity],
        unit="{span}",
        description="The maximum number of spans the queue of the span processor can hold.",
    )
    meter.create_observable_counter(
        _names.METRIC_SDK_EXPORTER_SPAN_EXPORTED,
        [exported],
        unit="{span}",
        description="The number of spans for which the export has finished, either successful or failed.",
    )
    meter.create_observable_up_down_counter(
        _names.METRIC_SDK_EXPORTER_SPAN_INFLIGHT,
        [inflight],
        unit="{span}",
        description="The number of spans passed to the exporter (retry buffer included) not exported yet.",
    )
    meter.create_observable_up_down_counter(
        _names.METRIC_EXPORT_BUFFER_SIZE,
        [buffer_size],
        unit="By",
        description="Bytes of encoded spans held for delivery (retry buffer and requests in flight).",
    )
    meter.create_observable_up_down_counter(
        _names.METRIC_EXPORT_BUFFER_CAPACITY,
        [buffer_capacity],
        unit="By",
        description="The retry buffer's bound in bytes (OTELPERF_RETRY_BUFFER).",
    )
