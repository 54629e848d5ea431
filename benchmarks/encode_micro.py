"""CPU per span of OTLP protobuf encoding: the SDK's encoder vs otelperf's, side by side.

    .venv/bin/python benchmarks/encode_micro.py [--batch 512] [--rounds 7]

Spans are real SDK ReadableSpans, made once: SERVER spans with HTTP attributes (child of a remote
parent), CLIENT database spans with 8 attributes, INTERNAL cache spans, a few routes, statements
and keys so values repeat as they do in a service. "SDK" is what the SDK's OTLP exporters do per
batch, ``encode_spans(spans).SerializeToString()``; "otelperf" is ``otelperf.export.encode.
encode_spans(spans)``, whose output is checked to decode to the same message first. otelperf's
attribute cache is warm (the steady state of a running service) except in the "cold cache" row,
where it is cleared before every batch. Rounds interleave the two encoders; the table shows medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otelperf.export import encode as _otlp_encode

ROUTES = ["/orders/{order_id}", "/products/{sku}", "/cart", "/health", "/users/{user_id}/orders"]
STATEMENTS = [
    (
        "SELECT",
        "orders",
        "SELECT id, total, status FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2",
    ),
    ("SELECT", "products", "SELECT sku, name, price FROM products WHERE sku = ANY($1)"),
    ("INSERT", "order_items", "INSERT INTO order_items (order_id, sku, qty) VALUES ($1, $2, $3)"),
    ("UPDATE", "inventory", "UPDATE inventory SET qty = qty - $1 WHERE sku = $2"),
]


def make_spans(count: int) -> dict[str, list[ReadableSpan]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "shop", "service.version": "1.4.2", "deployment.environment.name": "prod"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    http = provider.get_tracer("otelperf.instrumentation.asgi", "0.1.0")
    db = provider.get_tracer("otelperf.instrumentation.sqlalchemy", "0.1.0")
    cache = provider.get_tracer("otelperf.instrumentation.cache", "0.1.0")
    by_kind: dict[str, list[ReadableSpan]] = {"SERVER http": [], "CLIENT db": [], "INTERNAL cache": []}
    for i in range(count):
        remote = SpanContext(
            0x5B8EFFF798038103D269B633813FC60C + i, 0xEEE19B7EC3C1B174 + i, True, TraceFlags(1)
        )
        route = ROUTES[i % len(ROUTES)]
        status = (200, 200, 200, 404, 500)[i % 5]
        with http.start_as_current_span(
            f"GET {route}",
            context=trace.set_span_in_context(NonRecordingSpan(remote)),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "url.scheme": "http",
                "url.path": route.replace("{order_id}", str(1000 + i % 50)),
                "http.route": route,
                "http.response.status_code": status,
                "server.address": "shop.internal",
                "server.port": 8000,
                "client.address": f"10.0.{i % 4}.{i % 200}",
                "network.protocol.version": "1.1",
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
            },
        ) as server:
            if status == 500:
                server.set_status(Status(StatusCode.ERROR))
            operation, table, statement = STATEMENTS[i % len(STATEMENTS)]
            with db.start_as_current_span(
                f"{operation} {table}",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system.name": "postgresql",
                    "db.namespace": "shop",
                    "db.operation.name": operation,
                    "db.collection.name": table,
                    "db.query.text": statement,
                    "server.address": "db.internal",
                    "server.port": 5432,
                    "db.response.returned_rows": i % 20,
                },
            ):
                pass
            with cache.start_as_current_span(
                "cache get prices",
                attributes={"cache.name": "prices", "cache.hit": i % 3 != 0, "cache.key.count": 1},
            ):
                pass
    for span in memory.get_finished_spans():
        by_kind[
            {SpanKind.SERVER: "SERVER http", SpanKind.CLIENT: "CLIENT db"}.get(span.kind, "INTERNAL cache")
        ].append(span)
    provider.shutdown()
    return by_kind


def _sdk(batch: Sequence[ReadableSpan]) -> bytes:
    return bytes(sdk_encode_spans(batch).SerializeToString())


def _otelperf_cold(batch: Sequence[ReadableSpan]) -> bytes:
    _otlp_encode._kv_cache.clear()
    _otlp_encode._name_cache.clear()
    _otlp_encode._static_cache.clear()
    return bytes(_otlp_encode.encode_spans(batch))


def us_per_span(
    encode: Callable[[Sequence[ReadableSpan]], bytes], batches: list[list[ReadableSpan]]
) -> float:
    spans = sum(len(batch) for batch in batches)
    started = time.perf_counter()
    for batch in batches:
        encode(batch)
    return (time.perf_counter() - started) / spans * 1e6


def check_equal(batch: Sequence[ReadableSpan]) -> None:
    expected, actual = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    expected.ParseFromString(_sdk(batch))
    actual.ParseFromString(_otlp_encode.encode_spans(batch))
    if actual != expected:
        raise SystemExit("otelperf's encoding differs from the SDK's: the comparison would be meaningless")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1024, help="spans of each kind")
    parser.add_argument("--batch", type=int, default=512, help="spans per export batch (BSP default 512)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    by_kind = make_spans(args.spans)
    mixed = [span for spans in zip(*by_kind.values(), strict=True) for span in spans]
    workloads: dict[str, tuple[list[ReadableSpan], bool]] = {
        name: (spans, False) for name, spans in by_kind.items()
    }
    workloads["mixed"] = (mixed, False)
    workloads["mixed, cold cache"] = (mixed, True)

    encoders: dict[str, Callable[[Sequence[ReadableSpan]], bytes]]
    results: dict[str, dict[str, list[float]]] = {}
    for name, (spans, cold) in workloads.items():
        batches = [spans[i : i + args.batch] for i in range(0, len(spans), args.batch)]
        check_equal(batches[0])
        encoders = {"sdk": _sdk, "otelperf": _otelperf_cold if cold else _otlp_encode.encode_spans}
        for encode in encoders.values():
            us_per_span(encode, batches)  # warm up
        results[name] = {key: [] for key in encoders}
        for _ in range(args.rounds):  # interleaved so drift hits both alike
            for key, encode in encoders.items():
                results[name][key].append(us_per_span(encode, batches))

    print(f"batches of {args.batch} spans, median of {args.rounds} rounds")
    header = f"{'spans':<20} {'SDK us/span':>12} {'otelperf us/span':>17} {'SDK / otelperf':>15}"
    print(header)
    print("-" * len(header))
    for name, timings in results.items():
        sdk, ours = statistics.median(timings["sdk"]), statistics.median(timings["otelperf"])
        print(f"{name:<20} {sdk:>12.2f} {ours:>17.2f} {sdk / ours:>14.1f}x")


if __name__ == "__main__":
    main()
