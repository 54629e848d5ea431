"""Is telemetry flowing? The collector's own span counters and its Jaeger exporter's sending queue,
read from its :8888/metrics (the text format: :mod:`otelperf.backends.exposition`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from otelperf.backends.exposition import sum_family

# Counter families, without the `_total` suffix (older collectors and OpenMetrics differ on it).
ACCEPTED = "otelcol_receiver_accepted_spans"
REFUSED = "otelcol_receiver_refused_spans"
SENT = "otelcol_exporter_sent_spans"
SEND_FAILED = "otelcol_exporter_send_failed_spans"
ENQUEUE_FAILED = "otelcol_exporter_enqueue_failed_spans"  # refused by a full sending queue
# Gauges of the exporters' sending queues (only the Jaeger exporter has one: Prometheus pulls).
# In the unit of the queue's `sizer`: bytes of serialized spans in collector-config/otelcol.yaml.
QUEUE_SIZE = "otelcol_exporter_queue_size"
QUEUE_CAPACITY = "otelcol_exporter_queue_capacity"


@dataclass(frozen=True)
class SpanFlow:
    """Counters since the collector started, and its sending queue now.

    >>> SpanFlow(10, 0, 8, 0, queue_size=512, queue_capacity=4096).describe()
    'flowing: 10 spans accepted, 0 refused, 8 sent to Jaeger, 0 failed; queue 512 of 4096 (12.5% full)'
    """

    accepted: int
    refused: int
    sent: int
    send_failed: int
    enqueue_failed: int = 0
    queue_size: int | None = None  # None: no sending queue reported (an older or other config)
    queue_capacity: int | None = None

    @property
    def flowing(self) -> bool:
        return self.accepted > 0 and self.sent > 0

    def describe(self) -> str:
        if self.accepted == 0:
            state = "no spans received yet"
        elif self.refused or self.send_failed or self.enqueue_failed:
            state = "flowing, with losses"
        else:
            state = "flowing"
        text = (
            f"{state}: {self.accepted} spans accepted, {self.refused} refused, "
            f"{self.sent} sent to Jaeger, {self.send_failed} failed"
        )
        if self.enqueue_failed:
            text += f", {self.enqueue_failed} refused by a full queue"
        if self.queue_size is not None and self.queue_capacity:
            full = 100.0 * self.queue_size / self.queue_capacity
            text += f"; queue {self.queue_size} of {self.queue_capacity} ({full:.1f}% full)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flowing": self.flowing}


def span_flow(text: str) -> SpanFlow:
    def count(family: str) -> int:
        return int(sum_family(text, family) or 0)

    def gauge(family: str) -> int | None:
        value = sum_family(text, family)
        return None if value is None else int(value)

    return SpanFlow(
        count(ACCEPTED),
        count(REFUSED),
        count(SENT),
        count(SEND_FAILED),
        enqueue_failed=count(ENQUEUE_FAILED),
        queue_size=gauge(QUEUE_SIZE),
        queue_capacity=gauge(QUEUE_CAPACITY),
    )
