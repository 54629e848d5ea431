"""The retry buffer: byte bound, oldest-first eviction, and coalescing into one valid OTLP request."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.unit.export.spans import finished_spans

from otelperf.export._buffer import Payload, RetryBuffer
from otelperf.export.encode import encode_spans


def _decoded_span_ids(data: bytes) -> list[bytes]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    return [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_concatenated_requests_decode_as_one_request_with_every_span() -> None:
    first, second = finished_spans(3, "shop"), finished_spans(4, "inventory", "SELECT orders")
    data = encode_spans(first) + encode_spans(second)

    request = ExportTraceServiceRequest()
    request.ParseFromString(data)
    services = [
        kv.value.string_value
        for rs in request.resource_spans
        for kv in rs.resource.attributes
        if kv.key == "service.name"
    ]
    assert services == ["shop", "inventory"]  # each batch keeps its own resource
    expected = [s.context.span_id.to_bytes(8, "big") for s in first + second]
    assert _decoded_span_ids(data) == expected


def test_take_coalesces_the_oldest_payloads_up_to_the_limit() -> None:
    buffer = RetryBuffer(capacity=10_000)
    batches = [encode_spans(finished_spans(2)) for _ in range(3)]
    for data in batches:
        assert buffer.put(Payload(data, 2)) == []
    limit = len(batches[0]) + len(batches[1])
    taken = buffer.take(limit)
    assert taken is not None and taken.spans == 4
    assert taken.data == batches[0] + batches[1]
    assert len(_decoded_span_ids(taken.data)) == 4
    assert buffer.spans_held == 2 and buffer.bytes_held == len(batches[2])
    assert buffer.inflight_bytes == limit  # a request in flight still counts against the bound
    buffer.settle(taken)
    assert buffer.inflight_bytes == 0


def test_a_payload_larger_than_the_limit_is_still_sent_alone() -> None:
    buffer = RetryBuffer(capacity=10_000)
    buffer.put(Payload(b"x" * 500, 5))
    taken = buffer.take(100)
    assert taken is not None and taken.spans == 5


def test_full_buffer_drops_the_oldest_first_and_reports_them() -> None:
    buffer = RetryBuffer(capacity=250)
    buffer.put(Payload(b"a" * 100, 1))
    buffer.put(Payload(b"b" * 100, 2))
    evicted = buffer.put(Payload(b"c" * 100, 3))
    assert [p.data[:1] for p in evicted] == [b"a"]
    assert buffer.bytes_held == 200 and buffer.spans_held == 5


def test_retried_payload_goes_back_as_the_oldest_and_bytes_in_flight_count() -> None:
    buffer = RetryBuffer(capacity=250)
    buffer.put(Payload(b"a" * 100, 1))
    taken = buffer.take(100)
    assert taken is not None
    buffer.put(Payload(b"b" * 100, 2))
    # 100 in flight + 100 buffered + 100 new > 250: the oldest buffered batch goes.
    evicted = buffer.put(Payload(b"c" * 100, 3))
    assert [p.spans for p in evicted] == [2]
    buffer.settle(taken)
    assert buffer.put_back(taken) == []
    again = buffer.take(100)
    assert again is not None and again.data == b"a" * 100
