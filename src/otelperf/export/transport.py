"""Sending encoded OTLP trace requests: one attempt per call, the outcome classified for retry.

The retry policy itself (backoff, keeping batches in the retry buffer) is the processor's; a
transport only says whether an attempt worked, and if not whether trying again can help
(OTLP spec: HTTP 429/502/503/504, gRPC UNAVAILABLE and friends, connection errors and timeouts),
and how long the server asked to wait (``Retry-After``, seconds or an HTTP date).
"""

from __future__ import annotations

import email.utils
import gzip
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

__all__ = ["GrpcTransport", "HttpTransport", "SendResult", "Transport", "parse_retry_after"]

RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
# OTLP/gRPC: the codes the specification lists as retryable.
_RETRYABLE_GRPC = frozenset(
    {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"}
)
_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass(frozen=True)
class SendResult:
    ok: bool
    retryable: bool = False
    error_type: str = ""  # semconv error.type: the status code, or the exception's class name
    reason: str = ""  # for people: what went wrong
    retry_after: float | None = None
    rejected: int = 0  # partial success: spans the collector refused


class Transport(Protocol):
    endpoint: str
    component_type: str

    def send(self, data: bytes, timeout: float) -> SendResult: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    """
    if not value:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def rejected_spans(body: bytes) -> tuple[int, str]:
    """``partial_success`` of an ExportTraceServiceResponse: (rejected spans, error message)."""
    if not body:
        return 0, ""
    try:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        reply = ExportTraceServiceResponse()
        reply.ParseFromString(body)
        return int(reply.partial_success.rejected_spans), reply.partial_success.error_message[:200]
    except Exception:  # a malformed reply to an accepted export is not worth failing it over
        return 0, ""


class HttpTransport:
    """OTLP/HTTP with protobuf: a keep-alive session, proxies from the environment ignored."""

    component_type = "otlp_http_span_exporter"

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        compression: str | None = None,
        pool_size: int = 4,
    ) -> None:
        self.endpoint = endpoint
        self._gzip = compression == "gzip"
        self._headers = {"Content-Type": "application/x-protobuf", **dict(headers or {})}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._pool_size = max(pool_size, 1)
        self._session = self._new_session()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # proxies from the environment must not capture telemetry
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def reopen(self) -> None:
        """In a forked child: the parent's pooled connections are the parent's."""
        self._session = self._new_session()

    def send(self, data: bytes, timeout: float) -> SendResult:
        body = gzip.compress(data, compresslevel=1) if self._gzip else data
        try:
            response = self._session.post(self.endpoint, data=body, headers=self._headers, timeout=timeout)
        except requests.RequestException as exc:
            retryable = isinstance(exc, requests.ConnectionError | requests.Timeout)
            name = type(exc).__name__
            return SendResult(False, retryable, name, f"{name}: {short_reason(exc)}")
        status = response.status_code
        if 200 <= status < 300:
            rejected, message = rejected_spans(response.content)
            return SendResult(True, rejected=rejected, reason=message)
        return SendResult(
            False,
            status in RETRYABLE_HTTP,
            str(status),
            f"HTTP {status}",
            parse_retry_after(response.headers.get("Retry-After")),
        )

    def close(self) -> None:
        self._session.close()


class GrpcTransport:
    """OTLP/gRPC: the same encoded bytes through ``TraceService/Export`` (grpc imported lazily)."""

    component_type = "otlp_grpc_span_exporter"

    def __init__(self, endpoint: str, headers: Mapping[str, str] | None = None) -> None:
        try:
            import grpc
        except ImportError as exc:
            raise ImportError("OTLP over gRPC needs: pip install 'otelperf[grpc]'") from exc
        self._grpc: Any = grpc
        self.endpoint = endpoint
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
        self.reopen()

    def reopen(self) -> None:
        """Open the channel (again, in a forked child: a gRPC channel does not survive fork)."""
        grpc = self._grpc
        target = self.endpoint.split("://", 1)[-1].rstrip("/")
        if self.endpoint.startswith("https://"):
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        self._call = self._channel.unary_unary(
            _EXPORT_METHOD, request_serializer=_identity, response_deserializer=_identity
        )

    def send(self, data: bytes, timeout: float) -> SendResult:
        grpc = self._grpc
        try:
            reply, call = self._call.with_call(data, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            retryable = name in _RETRYABLE_GRPC or (name == "RESOURCE_EXHAUSTED" and _has_retry_info(exc))
            return SendResult(False, retryable, name, f"gRPC {name}: {short_reason(exc)}")
        except Exception as exc:
            return SendResult(False, True, type(exc).__name__, f"{type(exc).__name__}: {short_reason(exc)}")
        del call
        rejected, message = rejected_spans(reply)
        return SendResult(True, rejected=rejected, reason=message)

    def close(self) -> None:
        self._channel.close()


def _has_retry_info(exc: Any) -> bool:
    """OTLP: RESOURCE_EXHAUSTED is retried only when the server attached RetryInfo (status details);
    without it (a message over the size limit, say), retrying would block the buffer forever."""
    try:
        trailers = exc.trailing_metadata() or ()
    except Exception:
        return False
    return any(key == "grpc-status-details-bin" for key, _ in trailers)


def _identity(data: bytes) -> bytes:
    return data


def short_reason(exc: BaseException) -> str:
    text = str(exc)
    # requests nests the root cause deep in its message; the tail is what a person needs.
    if "Caused by" in text:
        text = text.split("Caused by", 1)[1].strip(" ()")
    return text[:200]
