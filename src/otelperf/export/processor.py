"""otelperf's exporting span processor: queue, encode, buffer in bytes, send concurrently, count.

    app thread   on_end: append to a bounded deque (or count queue_full) -- nothing else
    worker       batches of max_export_batch_size every schedule_delay, encoded to OTLP bytes at once
    retry buffer encoded batches, bounded in bytes; oldest dropped (and counted) first when full
    senders      export_concurrency threads; a failing collector leaves batches in the buffer and
                 one sender probes it with capped exponential backoff (and Retry-After)

Why not the SDK's BatchSpanProcessor: it exports one batch at a time and drops a batch after its
retries, so a slow or restarting collector loses spans, silently. Here a batch only leaves the
buffer delivered or counted (see :class:`otelperf.export.DeliveryStats` for the invariant).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import SpanProcessor

from otelperf._runtime.guard import RateLimitedWarning
from otelperf._sdk.suppression import suppressing
from otelperf.export import _stats
from otelperf.export._buffer import Payload, RetryBuffer
from otelperf.export._stats import DeliveryStats
from otelperf.export.encode import encode_spans
from otelperf.redaction.span_filter import scrub_spans

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

    from otelperf.export.transport import SendResult, Transport

__all__ = ["OTLPBatchProcessor"]

logger = logging.getLogger("otelperf.export")

# A coalesced request: under gRPC's default 4 MiB message limit, with room to spare.
MAX_PAYLOAD_BYTES = 3 * 1024 * 1024
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
_CLOSING_BACKOFF_MAX_S = 0.5  # at shutdown, retry often: the deadline is what bounds the wait
_WARN_INTERVAL_S = 60.0
_SLOW_EXPORT_S = 0.5  # a healthy collector on the same network answers in milliseconds
_CHECK_INTERVAL_S = 5.0
_OUTAGE_FAILURES = 2  # consecutive failed requests that make an outage (one is a blip)


class OTLPBatchProcessor(SpanProcessor):
    """Exports finished spans over OTLP with a byte-bounded retry buffer and full accounting.

    >>> from otelperf.export.transport import HttpTransport
    >>> processor = OTLPBatchProcessor(HttpTransport("http://127.0.0.1:4318/v1/traces"))
    >>> processor.stats().balanced
    True
    >>> processor.shutdown()
    """

    def __init__(
        self,
        transport: Transport,
        *,
        max_queue_size: int = 8192,
        max_export_batch_size: int = 512,
        schedule_delay: float = 1.0,
        retry_buffer: int = 64 * 1024 * 1024,
        export_concurrency: int = 4,
        export_timeout: float = 10.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self._transport = transport
        self._max_queue = max_queue_size
        self._batch = max(1, min(max_export_batch_size, max_queue_size))
        self._delay = max(schedule_delay, 0.001)
        self._timeout = export_timeout
        self.shutdown_timeout = shutdown_timeout
        # Set by otelperf.shutdown(): an absolute time.monotonic() deadline, so that the time the
        # processors in front of this one take to pass their last spans on comes out of it too.
        self.shutdown_deadline: float | None = None
        # A coalesced request never takes more than its share of the byte bound.
        self._max_payload = max(min(MAX_PAYLOAD_BYTES, retry_buffer // (2 * export_concurrency)), 1)
        self._capacity = retry_buffer
        self._concurrency = max(export_concurrency, 1)
        self._closed = False  # on_end no longer accepts spans
        self._start()
        if hasattr(os, "register_at_fork"):
            # A forked child (gunicorn, multiprocessing) has this object but none of its threads;
            # weakly, so that a processor that was shut down and dropped is not kept alive.
            restart = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: _call(restart))

    def _after_fork(self) -> None:
        if self._closed:
            return
        # The parent's queued and buffered spans are the parent's to deliver (and count).
        reopen = getattr(self._transport, "reopen", None)
        if reopen is not None:
            reopen()
        self._start()

    def _start(self) -> None:
        """Fresh state and threads: at construction, and in a forked child."""
        self._queue: deque[ReadableSpan] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._buffer = RetryBuffer(self._capacity)
        # Counters: written under _lock (on_end's drop path included), read by stats().
        self._taken = 0  # popped from the queue by the worker
        self._encoding = 0
        self._processed = 0  # handed to the exporting side (encoded into the buffer)
        self._processor_drops: dict[str, int] = {}  # error.type -> spans the processor dropped
        self._entry_drops = 0  # of those, the ones on_end refused (never entered the queue)
        self._exported = 0
        self._dropped: dict[str, int] = {}
        self._inflight_spans = 0
        self._requests = 0
        self._failures = 0
        self._window: deque[tuple[float, float]] = deque(maxlen=4096)  # (finished at, seconds)
        self._last_error: str | None = None
        # Retry state: consecutive failures, and no new attempt before _not_before.
        self._failing = 0
        self._not_before = 0.0
        self._probing = False
        self._closing = False  # the worker drains the queue and stops
        self._stop_senders = False
        self._final = False  # accounting closed by shutdown: late request outcomes are ignored
        self._warning = RateLimitedWarning(logger, _WARN_INTERVAL_S)
        self._slow_warning = RateLimitedWarning(logger, _WARN_INTERVAL_S)
        self._warned_drops = 0
        self._outage_told = False  # the current outage has had its warning
        self._backlog: deque[int] = deque(maxlen=4)
        self._next_check = time.monotonic() + _CHECK_INTERVAL_S
        self._worker = threading.Thread(target=self._work, name="otelperf-export", daemon=True)
        self._senders = [
            threading.Thread(target=self._send_loop, name=f"otelperf-send-{i}", daemon=True)
            for i in range(self._concurrency)
        ]
        self._worker.start()
        for sender in self._senders:
            sender.start()

    @property
    def endpoint(self) -> str:
        return self._transport.endpoint

    @property
    def component_type(self) -> str:
        return self._transport.component_type

    # --- the app's thread ---------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def otelperf_end_only(self) -> bool:
        """Only ended spans matter here: otelperf may build spans without ``start_span``."""
        return True

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return  # recorded but not sampled (RECORD_ONLY): not for export, as in the SDK
        queue = self._queue
        if self._closed or len(queue) >= self._max_queue:
            self._drop_at_processor(_stats.ALREADY_SHUTDOWN if self._closed else _stats.QUEUE_FULL)
            return
        queue.append(span)
        if self._final:  # shutdown cleared the queue between the check above and the append
            self._sweep_after_final()
            return
        # ">=" (not "=="): appends from several threads can step over the exact batch size.
        # is_set() is a plain read, so only the first span past it pays for set().
        if len(queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def _sweep_after_final(self) -> None:
        # `_final` is set under the lock before shutdown clears the queue: a span appended after
        # that clear finds it set, and is counted here instead of waiting in a dead queue.
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
            self._taken += left
            if left:
                self._count(self._processor_drops, _stats.ALREADY_SHUTDOWN, left)

    def _drop_at_processor(self, reason: str) -> None:
        with self._lock:
            self._processor_drops[reason] = self._processor_drops.get(reason, 0) + 1
            self._entry_drops += 1

    # --- the worker: batches, encoding, warnings ----------------------------------------------
    def _work(self) -> None:
        while True:
            if len(self._queue) < self._batch and not self._closing:
                self._wake.wait(self._delay)
                self._wake.clear()
            while self._queue:
                self._encode_batch()
                if len(self._queue) < self._batch and not self._closing:
                    break
            try:
                self._check_health()
            except Exception:  # a warning must never stop delivery
                logger.debug("otelperf delivery check failed", exc_info=True)
            if self._closing and not self._queue:
                return

    def _encode_batch(self) -> None:
        queue = self._queue
        with self._lock:
            if self._final:
                return
            batch = [queue.popleft() for _ in range(min(self._batch, len(queue)))]
            self._taken += len(batch)
            self._encoding = len(batch)
        try:
            data = encode_spans(scrub_spans(batch))  # exception text otelperf did not write
        except Exception:
            logger.warning("otelperf could not encode %d spans; they are dropped", len(batch), exc_info=True)
            with self._lock:
                if not self._final:  # else shutdown counted them already
                    self._encoding = 0
                    self._count(self._processor_drops, _stats.ENCODE_ERROR, len(batch))
            return
        with self._cond:
            if self._final:
                return
            self._encoding = 0
            self._processed += len(batch)
            for old in self._buffer.put(Payload(data, len(batch))):
                self._count(self._dropped, _stats.BUFFER_FULL, old.spans)
            self._cond.notify()

    # --- senders ------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        # The export requests are otelperf's own: instrumentation (otelperf's requests/urllib3
        # wrappers, or contrib's) must not trace them, or every export would make a span that the
        # next export carries, which makes another: a request per batch interval, forever.
        otel_context.attach(suppressing())
        while True:
            with self._cond:
                payload = self._next_payload()
                if payload is None:
                    return
                self._inflight_spans += payload.spans
                probe = self._failing > 0
                self._probing = self._probing or probe
            started = time.monotonic()
            try:
                result = self._transport.send(payload.data, self._request_timeout())
            except Exception as exc:  # a transport bug must not lose the batch's accounting
                from otelperf.export.transport import SendResult

                result = SendResult(False, True, type(exc).__name__, repr(exc)[:200])
            self._settle(payload, result, probe, time.monotonic() - started)

    def _next_payload(self) -> Payload | None:
        """Wait (holding _cond) until a payload may be sent; None when this sender must stop."""
        while True:
            if self._final or (self._stop_senders and not len(self._buffer)):
                return None
            now = time.monotonic()
            wait: float | None = None
            if len(self._buffer) == 0:
                wait = None
            elif now < self._not_before:
                wait = self._not_before - now
            elif self._failing and self._probing:
                wait = None  # one request at a time tests a failing collector
            else:
                return self._buffer.take(self._max_payload)
            # Idle senders sleep until notified (a new payload, a settled probe, shutdown): no
            # polling, so an idle exporter costs nothing; a backoff waits exactly its time.
            self._cond.wait(wait)

    def _request_timeout(self) -> float:
        deadline = self._deadline
        if deadline is None:
            return self._timeout
        return max(min(self._timeout, deadline - time.monotonic()), 0.05)

    _deadline: float | None = None

    def _settle(self, payload: Payload, result: SendResult, probe: bool, seconds: float) -> None:
        with self._cond:
            if self._final:
                return  # shutdown already counted these spans as not delivered
            self._buffer.settle(payload)
            self._inflight_spans -= payload.spans
            if probe:
                self._probing = False
            self._requests += 1
            self._window.append((time.monotonic(), seconds))
            if result.ok:
                rejected = min(result.rejected, payload.spans)
                self._exported += payload.spans - rejected
                if rejected:
                    self._count(self._dropped, _stats.REJECTED, rejected)
                    self._last_error = f"collector rejected {rejected} spans: {result.reason}"
                self._failing = 0
                self._not_before = 0.0
                self._outage_told = False
            else:
                self._failures += 1
                self._last_error = result.reason
                if result.retryable:
                    for old in self._buffer.put_back(payload):
                        self._count(self._dropped, _stats.BUFFER_FULL, old.spans)
                    self._failing += 1
                    self._not_before = time.monotonic() + self._backoff(result.retry_after)
                    if self._failing == _OUTAGE_FAILURES:
                        self._wake.set()  # the worker tells the outage now, not at its next check
                else:
                    self._count(self._dropped, result.error_type or "error", payload.spans)
            self._cond.notify_all()

    def _backoff(self, retry_after: float | None) -> float:
        cap = _CLOSING_BACKOFF_MAX_S if self._closing else BACKOFF_MAX_S
        if retry_after:  # the server's word; a date already past falls back to our backoff
            return min(retry_after, cap)
        exponential: float = BACKOFF_FIRST_S * 2.0 ** min(self._failing - 1, 16)
        return min(exponential, cap) * random.uniform(0.5, 1.0)

    @staticmethod
    def _count(table: dict[str, int], reason: str, n: int) -> None:
        table[reason] = table.get(reason, 0) + n

    # --- figures ------------------------------------------------------------------------------
    def stats(self) -> DeliveryStats:
        with self._lock:
            in_queue = len(self._queue)  # read once: app threads append without the lock
            queued = in_queue + self._encoding
            dropped = dict(self._dropped)
            for reason, n in self._processor_drops.items():
                dropped[reason] = dropped.get(reason, 0) + n
            recent = [s for t, s in self._window if t > time.monotonic() - _WARN_INTERVAL_S]
            return DeliveryStats(
                spans_handed=self._taken + in_queue + self._entry_drops,
                spans_exported=self._exported,
                dropped=dropped,
                spans_queued=queued,
                spans_buffered=self._buffer.spans_held,
                spans_inflight=self._inflight_spans,
                buffered_bytes=self._buffer.bytes_held + self._buffer.inflight_bytes,
                buffer_capacity_bytes=self._buffer.capacity,
                queue_capacity=self._max_queue,
                export_requests=self._requests,
                export_failures=self._failures,
                mean_export_seconds=sum(recent) / len(recent) if recent else 0.0,
                last_error=self._last_error,
                endpoint=self.endpoint,
            )

    def metric_values(self) -> tuple[int, dict[str, int], int, int, dict[str, int], int]:
        """(processed ok, processor drops, queue size, exported ok, exporter drops, inflight)."""
        with self._lock:
            return (
                self._processed,
                dict(self._processor_drops),
                len(self._queue) + self._encoding,
                self._exported,
                dict(self._dropped),
                self._buffer.spans_held + self._inflight_spans,
            )

    def _check_health(self) -> None:
        now = time.monotonic()
        # Told at once, not at the next periodic check: an outage (a retry failed too), and the
        # first span lost. A short outage must not fall between two checks unseen.
        outage = self._failing >= _OUTAGE_FAILURES and not self._outage_told
        first_loss = not self._warned_drops and bool(self._dropped or self._processor_drops)
        if now < self._next_check and not self._closing and not outage and not first_loss:
            return
        self._next_check = now + _CHECK_INTERVAL_S
        stats = self.stats()
        mib = 1024 * 1024
        if stats.spans_dropped > self._warned_drops or (self._failing and stats.spans_buffered):
            first_loss = stats.spans_dropped > 0 and not self._warned_drops
            self._warned_drops = stats.spans_dropped
            self._outage_told = self._outage_told or self._failing > 0
            self._warning.warn(
                "otelperf span delivery to %s: %d delivered, %d dropped (%s), %d waiting "
                "(%.1f of %.0f MiB buffered); last error: %s. The application is unaffected. "
                "(`otelperf doctor` checks the collector)",
                stats.endpoint,
                stats.spans_exported,
                stats.spans_dropped,
                stats.describe_drops(),
                stats.spans_pending,
                stats.buffered_bytes / mib,
                stats.buffer_capacity_bytes / mib,
                stats.last_error or "none",
                force=first_loss,  # losing spans is news even right after an outage warning
            )
        self._backlog.append(stats.buffered_bytes)
        growing = len(self._backlog) == self._backlog.maxlen and all(
            a < b for a, b in zip(self._backlog, list(self._backlog)[1:], strict=False)
        )
        if stats.mean_export_seconds > _SLOW_EXPORT_S or (growing and not self._failing):
            self._slow_warning.warn(
                "otelperf: the collector at %s is slow (exports take %.2fs on average; %.1f MiB "
                "waiting, %s). Spans are kept up to the retry buffer (%.0f MiB); raise "
                "OTELPERF_EXPORT_CONCURRENCY or check the collector's load",
                stats.endpoint,
                stats.mean_export_seconds,
                stats.buffered_bytes / mib,
                "growing" if growing else "steady",
                stats.buffer_capacity_bytes / mib,
            )

    # --- flush and shutdown -------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        self._wake.set()
        with self._cond:
            while self._queue or self._encoding or len(self._buffer) or self._inflight_spans:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._cond.wait(min(remaining, 0.05))
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Deliver what can be delivered before the deadline; count the rest as dropped."""
        if self._closed:
            return
        if timeout is not None:
            deadline = time.monotonic() + timeout
        elif self.shutdown_deadline is not None:
            deadline = self.shutdown_deadline
        else:
            deadline = time.monotonic() + self.shutdown_timeout
        self._deadline = deadline
        self._closed = True
        self._closing = True
        self._wake.set()
        self._worker.join(max(deadline - time.monotonic(), 0))
        with self._cond:
            # Retry soon: a collector that comes back before the deadline still gets everything.
            self._not_before = min(self._not_before, time.monotonic() + _CLOSING_BACKOFF_MAX_S)
            self._stop_senders = True
            self._cond.notify_all()
        for sender in self._senders:
            sender.join(max(deadline + 0.1 - time.monotonic(), 0))
        with self._cond:
            self._final = True
            self._cond.notify_all()
            # Not yet handed to the exporting side: the processor's drops; the rest the exporter's.
            not_encoded = len(self._queue) + self._encoding
            not_sent = self._buffer.spans_held + self._inflight_spans
            self._taken += len(self._queue)
            self._queue.clear()
            self._encoding = 0
            self._buffer.clear()
            self._buffer.inflight_bytes = 0
            self._inflight_spans = 0
            if not_encoded:
                self._count(self._processor_drops, _stats.SHUTDOWN, not_encoded)
            if not_sent:
                self._count(self._dropped, _stats.SHUTDOWN, not_sent)
        try:
            self._transport.close()
        except Exception:
            logger.debug("otelperf transport close failed", exc_info=True)
        # A sender told to stop may not have been scheduled yet on a busy machine: give it a moment
        # (its request, if any, ended with the transport), so no export thread outlives shutdown.
        for sender in self._senders:
            sender.join(max(deadline + 0.5 - time.monotonic(), 0.05))


def _call(method_ref: weakref.WeakMethod[Any]) -> None:
    method = method_ref()
    if method is not None:
        method()
