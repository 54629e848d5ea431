"""Per-statement cost of otelperf's SQLAlchemy instrumentation, in-process, side by side.

    .venv/bin/python benchmarks/sqlalchemy_micro.py [--requests 2000] [--rounds 5] [--other PATH]

A "request" is a parent span around one connection and 11 statements (a list query and 10
lookups by id, the N+1 shape) against in-memory SQLite, so the statements themselves are cheap
and the instrumentation's own cost shows. Every variant gets the same SDK TracerProvider (always
on, no exporter) and MeterProvider: span creation and metric recording are counted, export is not.
``--other PATH`` adds a variant: another version of the instrumentation module (for example a
copy of an earlier one), to compare before and after in one run.

Each variant runs in a fresh process: SQLAlchemy never clears ``Engine._has_events`` once an event
listener was registered, so an event-based variant would slow every variant measured after it.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time

STATEMENTS_PER_REQUEST = 11


def measure(variant: str, other: str | None, requests: int, rounds: int) -> float:
    """Minimum over ``rounds`` of the mean µs per request, in this process."""
    import sqlalchemy as sa
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from otelperf.config import Settings
    from otelperf.instrumentation._base import InstrumentContext

    tracer = TracerProvider().get_tracer("bench")
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    if variant == "otelperf":
        from otelperf.instrumentation.sqlalchemy import INSTRUMENTOR

        INSTRUMENTOR.instrument(InstrumentContext(tracer, meter, Settings()))
    elif variant == "other":
        assert other is not None
        spec = importlib.util.spec_from_file_location("other_instrumentation", other)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.SQLAlchemyInstrumentor().instrument(InstrumentContext(tracer, meter, Settings()))

    engine = sa.create_engine("sqlite://")
    items = sa.table("items", sa.column("id", sa.Integer), sa.column("label", sa.String))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT)"))
        conn.execute(items.insert(), [{"id": i, "label": f"l{i}"} for i in range(100)])
    list_query = sa.select(items.c.id).where(items.c.id < 10)
    by_id = sa.select(items.c.label).where(items.c.id == sa.bindparam("id"))

    def request() -> None:
        with tracer.start_as_current_span("request"), engine.connect() as conn:
            for (item_id,) in conn.execute(list_query).all():
                conn.execute(by_id, {"id": item_id}).one()

    best = float("inf")
    for _ in range(200):  # warm up: compiled-statement cache, pool, otelperf's SQL caches
        request()
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(requests):
            request()
        best = min(best, (time.perf_counter() - started) / requests * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--other", help="path of another sqlalchemy instrumentation module")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(measure(args.child, args.other, args.requests, args.rounds))
        return

    variants = ["bare", "otelperf"] + (["other"] if args.other else [])
    results: dict[str, float] = {}
    for _ in range(3):  # interleaved processes, so drift hits every variant alike; keep the best
        for variant in variants:
            command = [sys.executable, __file__, "--child", variant]
            command += ["--requests", str(args.requests), "--rounds", str(args.rounds)]
            command += ["--other", args.other] if args.other else []
            us = float(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            results[variant] = min(results.get(variant, us), us)

    bare = results["bare"]
    print(f"{'variant':<10} {'us/request':>11} {'added us/statement':>19}")
    for variant, us in results.items():
        print(f"{variant:<10} {us:>11.1f} {(us - bare) / STATEMENTS_PER_REQUEST:>19.2f}")
    if args.other:
        ratio = (results["otelperf"] - bare) / (results["other"] - bare)
        print(f"otelperf added cost / other added cost = {ratio:.2f}")


if __name__ == "__main__":
    main()
