"""OTLP/HTTP span exporter using otelperf's fast encoder (:mod:`otelperf.export.encode`).

Same protocol and retry rules as the SDK's exporter (retry 429/502/503/504 and connection errors
with exponential backoff and jitter, honour ``Retry-After``, never past the export deadline; stop
retrying at shutdown), one pooled keep-alive connection, optional gzip. A failure raises
:class:`ExportFailed` with a short reason, which :class:`otelperf.export.GuardedSpanExporter`
turns into its once-a-minute warning.
"""

from __future__ import annotations

import gzip
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import requests
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otelperf.export.encode import encode_spans
from otelperf.export.transport import parse_retry_after, short_reason

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
_MAX_ATTEMPTS = 6


class ExportFailed(Exception):
    """An export batch was not accepted; the message says why."""


class FastOTLPSpanExporter(SpanExporter):
    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        compression: str | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._timeout = timeout
        self._compression = compression
        self._headers = {"Content-Type": "application/x-protobuf", **dict(headers or {})}
        if compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        self._session = requests.Session()
        self._session.trust_env = False  # proxies from the environment must not capture telemetry
        self._shutdown = threading.Event()
        self.rejected_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown.is_set():
            return SpanExportResult.FAILURE
        data = encode_spans(spans)
        if self._compression == "gzip":
            data = gzip.compress(data, compresslevel=1)
        deadline = time.monotonic() + self._timeout
        reason = "no attempt"
        for attempt in range(_MAX_ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            retry_after: float | None = None
            try:
                response = self._session.post(
                    self._endpoint, data=data, headers=self._headers, timeout=remaining
                )
            except requests.RequestException as exc:
                reason = f"{type(exc).__name__}: {short_reason(exc)}"
                retryable = isinstance(exc, requests.ConnectionError | requests.Timeout)
            else:
                if 200 <= response.status_code < 300:
                    self._count_rejected(response.content)
                    return SpanExportResult.SUCCESS
                reason = f"HTTP {response.status_code}"
                retryable = response.status_code in _RETRYABLE_STATUS
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if not retryable:
                break
            backoff = retry_after if retry_after is not None else (2**attempt) * random.uniform(0.8, 1.2)
            if backoff >= deadline - time.monotonic() or self._shutdown.wait(backoff):
                break
        raise ExportFailed(reason)

    def _count_rejected(self, body: bytes) -> None:
        if not body:
            return
        try:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            reply = ExportTraceServiceResponse()
            reply.ParseFromString(body)
            self.rejected_spans += reply.partial_success.rejected_spans
        except Exception:  # a malformed reply is not worth failing an accepted export over
            return

    def shutdown(self) -> None:
        self._shutdown.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
