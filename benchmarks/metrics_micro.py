"""Cost of one histogram record: the SDK's Histogram vs otelperf's FastHistogram, side by side.

    .venv/bin/python benchmarks/metrics_micro.py [--records 20000] [--rounds 5]

Both record the same value with the same four attributes under a sampled span (so both keep
exemplars), each into its own MeterProvider with an in-memory reader; rounds interleave the two and
the minimum per variant is reported (the least disturbed run), with the ratio.
"""

from __future__ import annotations

import argparse
import functools
import timeit
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otelperf import _names
from otelperf.pipeline.fast_histograms import FastMeter, FastMetrics

ATTRIBUTES = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "http.route": "/orders/{order_id}",
    "http.response.status_code": 200,
}


def _instruments() -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "unit": "s",
        "explicit_bucket_boundaries_advisory": list(_names.DURATION_BUCKETS_S),
    }
    sdk = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    fast_metrics = FastMetrics(Resource.create({}), InstrumentationScope("bench"))
    fast_metrics.attach(reader)
    fast = FastMeter(provider.get_meter("bench"), fast_metrics)
    return {"sdk": sdk.create_histogram("d", **kwargs), "otelperf": fast.create_histogram("d", **kwargs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    span = TracerProvider().get_tracer("bench").start_span("request")
    ctx = trace.set_span_in_context(span)
    results: dict[str, list[float]] = {"sdk": [], "otelperf": []}
    instruments = _instruments()
    for _ in range(args.rounds):
        for name, hist in instruments.items():
            record = functools.partial(hist.record, 0.012, ATTRIBUTES, context=ctx)
            seconds = timeit.timeit(record, number=args.records)
            results[name].append(seconds / args.records * 1e6)
    sdk, ours = min(results["sdk"]), min(results["otelperf"])
    print(f"{'variant':<10} {'us/record':>10}")
    print(f"{'sdk':<10} {sdk:>10.2f}")
    print(f"{'otelperf':<10} {ours:>10.2f}")
    print(f"otelperf / sdk = {ours / sdk:.2f}")


if __name__ == "__main__":
    main()
