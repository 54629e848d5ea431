"""protocol=grpc: otelperf's processor sends its encoded batches through TraceService/Export."""

from __future__ import annotations

from concurrent import futures

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

import otelperf


def test_init_with_grpc_delivers_every_span_over_grpc() -> None:
    grpc = pytest.importorskip("grpc")
    span_ids: list[bytes] = []

    def export(request: bytes, context: object) -> bytes:
        message = ExportTraceServiceRequest()
        message.ParseFromString(request)
        span_ids.extend(s.span_id for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return ExportTraceServiceResponse().SerializeToString()

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        runtime = otelperf.init(
            service_name="grpc-test",
            protocol="grpc",
            endpoint=f"http://127.0.0.1:{port}",
            instrument="none",
            detectors="none",
        )
        assert runtime.tracer is not None
        for i in range(1500):
            with runtime.tracer.start_as_current_span("op", attributes={"i": i}):
                pass
        assert otelperf.shutdown(timeout=10) is True
        delivery = runtime.delivery
        assert delivery is not None and delivery.spans_exported == 1500 and delivery.dropped == {}
        assert len(set(span_ids)) == len(span_ids) == 1500
    finally:
        otelperf.shutdown(timeout=1)
        server.stop(0)
