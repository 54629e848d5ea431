"""What ``otelperf.expect()`` costs the app's thread, side by side in one run.

A request span with one ``with`` block around nothing, first a no-op context manager, then
``otelperf.expect("n_plus_one")`` (one ``otelperf.expect`` span opened, made current, ended); the
ratio and the added microseconds per block. Nothing is added per statement inside the block.

    .venv/bin/python benchmarks/expect_micro.py [--blocks 5000]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import otelperf
from otelperf._runtime import setup as _setup
from otelperf.config import resolve_settings


class _Null(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _best(run: Callable[[], None], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        run()
        best = min(best, time.thread_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=5000)
    args = parser.parse_args()
    settings = resolve_settings(environ={}, service_name="bench", detectors="none", budgets_file="none")
    runtime = _setup.start(settings, span_exporter=_Null(), metric_readers=[], set_global=False)
    _setup.install(runtime)
    tracer = runtime.tracer
    assert tracer is not None
    marker = otelperf.expect("n_plus_one", reason="bench")

    def blocks(make: Callable[[], contextlib.AbstractContextManager[object]]) -> Callable[[], None]:
        def run() -> None:
            with tracer.start_as_current_span("GET /bench"):
                for _ in range(args.blocks):
                    with make():
                        pass

        return run

    try:
        blocks(contextlib.nullcontext)()  # warm up
        blocks(lambda: marker)()
        plain = _best(blocks(contextlib.nullcontext))
        marked = _best(blocks(lambda: marker))
    finally:
        _setup.install(None)
        _setup.stop(runtime, timeout=5.0)
    per_plain = plain / args.blocks * 1e6
    per_marked = marked / args.blocks * 1e6
    print(f"app thread CPU per with-block ({args.blocks} blocks in one request, best of 5)")
    print(f"  no-op context manager         {per_plain:8.2f} us")
    print(f"  otelperf.expect(...)          {per_marked:8.2f} us   added {per_marked - per_plain:.2f} us")


if __name__ == "__main__":
    main()
