"""The retry buffer: encoded OTLP batches awaiting delivery, bounded in bytes.

Batches are kept as the bytes of a serialized ``ExportTraceServiceRequest``. Concatenated, such
messages form one valid ``ExportTraceServiceRequest`` (protobuf merges repeated fields), so after an
outage the backlog is sent in few large requests instead of many small ones.

Not thread-safe: the processor calls it under its own lock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Payload", "RetryBuffer"]


@dataclass(frozen=True)
class Payload:
    data: bytes
    spans: int

    @property
    def size(self) -> int:
        return len(self.data)


class RetryBuffer:
    """Oldest-first FIFO of :class:`Payload`; ``bytes_held + inflight_bytes`` stays <= ``capacity``.

    >>> buf = RetryBuffer(capacity=10)
    >>> buf.put(Payload(b"abcdef", 2))
    []
    >>> [p.spans for p in buf.put(Payload(b"ghijkl", 3))]  # over 10 bytes: the oldest goes
    [2]
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Payload] = deque()
        self.bytes_held = 0
        self.spans_held = 0
        self.inflight_bytes = 0  # taken by senders, not yet settled: counts against the bound

    def __len__(self) -> int:
        return len(self._items)

    def put(self, payload: Payload) -> list[Payload]:
        """Append; return the payloads evicted (oldest first) to stay within the capacity."""
        self._items.append(payload)
        self.bytes_held += payload.size
        self.spans_held += payload.spans
        return self._evict()

    def put_back(self, payload: Payload) -> list[Payload]:
        """Return a payload whose export must be retried; it keeps its place as the oldest."""
        self._items.appendleft(payload)
        self.bytes_held += payload.size
        self.spans_held += payload.spans
        return self._evict()

    def take(self, max_bytes: int) -> Payload | None:
        """The oldest payloads, concatenated up to ``max_bytes`` (at least one), or None."""
        if not self._items:
            return None
        first = self._items.popleft()
        parts, size, spans = [first.data], first.size, first.spans
        while self._items and size + self._items[0].size <= max_bytes:
            nxt = self._items.popleft()
            parts.append(nxt.data)
            size += nxt.size
            spans += nxt.spans
        self.bytes_held -= size
        self.spans_held -= spans
        self.inflight_bytes += size
        return Payload(b"".join(parts) if len(parts) > 1 else first.data, spans)

    def settle(self, payload: Payload) -> None:
        """A taken payload's request finished (whatever the outcome)."""
        self.inflight_bytes -= payload.size

    def clear(self) -> list[Payload]:
        items = list(self._items)
        self._items.clear()
        self.bytes_held = self.spans_held = 0
        return items

    def _evict(self) -> list[Payload]:
        evicted: list[Payload] = []
        while self._items and self.bytes_held + self.inflight_bytes > self.capacity:
            old = self._items.popleft()
            self.bytes_held -= old.size
            self.spans_held -= old.spans
            evicted.append(old)
        return evicted
