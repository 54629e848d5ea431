"""The OTLP transports against real loopback servers: outcomes classified for retry."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from concurrent import futures

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from tests.unit.export.spans import finished_spans

from otelperf.export.transport import GrpcTransport, HttpTransport, parse_retry_after
from otelperf.testing.otlp_sink import Fault, OTLPSink


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    with OTLPSink(ids_only=True) as s:
        yield s


def _payload(n: int = 3) -> bytes:
    from otelperf.export.encode import encode_spans

    return encode_spans(finished_spans(n))


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("-1") == 0.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = parse_retry_after(later)
    assert parsed is not None and 28.0 <= parsed <= 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_http_success_delivers_the_spans(sink: OTLPSink) -> None:
    transport = HttpTransport(f"{sink.endpoint}/v1/traces")
    result = transport.send(_payload(3), timeout=5)
    assert result.ok and result.rejected == 0
    assert len(sink.span_ids) == 3
    transport.close()


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (502, True), (400, False)])
def test_http_status_is_classified_with_retry_after(sink: OTLPSink, status: int, retryable: bool) -> None:
    sink.fault = Fault("status", status, retry_after="7")
    result = HttpTransport(f"{sink.endpoint}/v1/traces").send(_payload(), timeout=5)
    assert not result.ok
    assert result.retryable is retryable
    assert result.error_type == str(status)
    assert result.retry_after == 7.0


@pytest.mark.parametrize("mode", ["reset", "hang"])
def test_reset_and_timeout_are_retryable(sink: OTLPSink, mode: str) -> None:
    sink.fault = Fault(mode)
    try:
        result = HttpTransport(f"{sink.endpoint}/v1/traces").send(_payload(), timeout=0.5)
    finally:
        sink.fault = None
    assert not result.ok and result.retryable, result
    assert sink.span_ids == set()


def test_refused_connection_is_retryable(sink: OTLPSink) -> None:
    endpoint = f"{sink.endpoint}/v1/traces"
    sink.refuse()
    result = HttpTransport(endpoint).send(_payload(), timeout=2)
    assert not result.ok and result.retryable and result.error_type == "ConnectionError"


def test_partial_success_reports_rejected_spans(sink: OTLPSink) -> None:
    sink.fault = Fault("partial", rejected=2)
    result = HttpTransport(f"{sink.endpoint}/v1/traces").send(_payload(3), timeout=5)
    assert result.ok and result.rejected == 2


def test_grpc_sends_the_same_bytes_through_trace_service_export() -> None:
    grpc = pytest.importorskip("grpc")
    received: list[bytes] = []
    answer = {"code": None}

    def export(request: bytes, context: object) -> bytes:
        if answer["code"] is not None:
            context.abort(answer["code"], "collector is busy")  # type: ignore[attr-defined]
        received.append(request)
        return ExportTraceServiceResponse().SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},  # bytes in, bytes out
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        transport = GrpcTransport(f"http://127.0.0.1:{port}")
        data = _payload(4)
        assert transport.send(data, timeout=5).ok
        request = ExportTraceServiceRequest()
        request.ParseFromString(received[0])
        assert sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans) == 4
        answer["code"] = grpc.StatusCode.UNAVAILABLE
        failed = transport.send(data, timeout=5)
        assert not failed.ok and failed.retryable and failed.error_type == "UNAVAILABLE"
        answer["code"] = grpc.StatusCode.INVALID_ARGUMENT
        final = transport.send(data, timeout=5)
        assert not final.ok and not final.retryable and final.error_type == "INVALID_ARGUMENT"
        answer["code"] = grpc.StatusCode.RESOURCE_EXHAUSTED  # no retry details: final (OTLP)
        too_big = transport.send(data, timeout=5)
        assert not too_big.ok and not too_big.retryable and too_big.error_type == "RESOURCE_EXHAUSTED"
        transport.close()
    finally:
        server.stop(0)
