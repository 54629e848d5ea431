"""What happened to every span handed to the exporting processor: a snapshot type.

Every span the processor receives is, at any moment, in exactly one place::

    handed = exported + dropped (by reason) + queued + buffered + inflight

``queued``: in the processor's span queue (or being encoded); ``buffered``: encoded, in the retry
buffer; ``inflight``: in an export request that has not finished. Once shutdown completes the
last three are zero: every span was delivered or counted as dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DeliveryStats"]

# error.type values for spans otelperf drops (the semconv names where one exists).
QUEUE_FULL = "queue_full"  # semconv: the processor's span queue was full
ALREADY_SHUTDOWN = "already_shutdown"  # semconv: a span ended after shutdown
REJECTED = "rejected"  # semconv: the collector's partial-success reply rejected it
BUFFER_FULL = "buffer_full"  # the retry buffer was full: the oldest batches went first
SHUTDOWN = "shutdown"  # still undelivered when shutdown's deadline passed
ENCODE_ERROR = "encode_error"  # a span otelperf could not encode (a bug: logged once)


@dataclass(frozen=True)
class DeliveryStats:
    """A consistent snapshot of the span delivery figures (``otelperf.init().delivery``).

    >>> stats = DeliveryStats(spans_handed=10, spans_exported=7, dropped={"queue_full": 3})
    >>> stats.spans_dropped, stats.balanced
    (3, True)
    """

    spans_handed: int = 0
    spans_exported: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)  # error.type -> spans
    spans_queued: int = 0
    spans_buffered: int = 0
    spans_inflight: int = 0
    buffered_bytes: int = 0  # retry buffer + requests in flight (what the byte bound covers)
    buffer_capacity_bytes: int = 0
    queue_capacity: int = 0
    export_requests: int = 0  # finished export attempts (each retry counts)
    export_failures: int = 0  # attempts that failed (retried or not)
    mean_export_seconds: float = 0.0  # over the attempts of the last minute
    last_error: str | None = None
    endpoint: str = ""

    @property
    def spans_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def spans_pending(self) -> int:
        """Spans not yet delivered nor dropped: queued, buffered or in an unfinished request."""
        return self.spans_queued + self.spans_buffered + self.spans_inflight

    @property
    def balanced(self) -> bool:
        """The accounting invariant: every span handed over is somewhere."""
        return self.spans_handed == self.spans_exported + self.spans_dropped + self.spans_pending

    def describe_drops(self) -> str:
        if not self.dropped:
            return "none"
        return ", ".join(f"{reason}: {n}" for reason, n in sorted(self.dropped.items()))

    def to_dict(self) -> dict[str, object]:
        return {
            "spans_handed": self.spans_handed,
            "spans_exported": self.spans_exported,
            "spans_dropped": self.spans_dropped,
            "dropped": dict(self.dropped),
            "spans_queued": self.spans_queued,
            "spans_buffered": self.spans_buffered,
            "spans_inflight": self.spans_inflight,
            "buffered_bytes": self.buffered_bytes,
            "buffer_capacity_bytes": self.buffer_capacity_bytes,
            "queue_capacity": self.queue_capacity,
            "export_requests": self.export_requests,
            "export_failures": self.export_failures,
            "mean_export_seconds": round(self.mean_export_seconds, 4),
            "last_error": self.last_error,
            "endpoint": self.endpoint,
        }
