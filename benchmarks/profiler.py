"""What does the sampling profiler cost? The same workload with ``profiler`` on and off, side by side.

    .venv/bin/python benchmarks/profiler.py             # 7 interleaved rounds
    .venv/bin/python benchmarks/profiler.py --quick     # smoke run
    .venv/bin/python benchmarks/profiler.py --rounds 11 --requests 3000 --json /tmp/profiler.json

Each arm-round is a fresh process that starts otelperf with in-memory exporters (the test capture:
no network in the way), then sends ``--requests`` requests at ``--concurrency`` to a FastAPI app
through ``httpx.ASGITransport`` (no sockets: the process's CPU time is the app's and otelperf's,
the client's share being the same in both arms). The routes do a fixed amount of Python work:

- ``GET /compute``       ``async def``, about 1 ms of Python on the event loop
- ``GET /sync-compute``  ``def``, the same in Starlette's thread pool (the profiler follows the thread)
- ``GET /json``          ``async def``, trivial

Two workloads: ``within`` (a budget no request breaks: the profiler samples, the detector only
drops the samples) and ``over`` (a budget every request breaks: every request's samples are
analysed into a finding; the worst case). CPU time is ``time.process_time()`` (all threads: the
sampler's included) over the measured requests, after a warm-up. Rounds interleave the arms in a
rotating order; the result is the median over rounds of the per-round ratio on/off of CPU per
request, with its spread, which is what to read on a shared, noisy machine.

``--instructions`` counts instructions instead (valgrind's callgrind, every thread), which do not
depend on what else the machine is doing: each arm and workload runs with N and 3N requests and
the result is ``(count at 3N - count at N) / 2N``, the cost of one more request (start-up cancels
out). Under callgrind the program runs ~50x slower than real time while the sampler's clock does
not, so the profiler samples at ``--hz / --clock-scale`` there (2 Hz for 100 / 50): the samples per
request of a real run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ARMS = ("off", "on")
WORKLOADS = {"within": 10_000.0, "over": 0.01}  # the budget of every route, ms
ROUTES = ("/compute", "/sync-compute", "/json")


def _work(n: int) -> int:
    # A fixed amount of pure-Python work: what a handler does between its queries.
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def _app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    n = int(os.environ.get("BENCH_WORK", "20000"))

    @app.get("/compute")
    async def compute() -> dict[str, int]:
        return {"total": _work(n)}

    @app.get("/sync-compute")
    def sync_compute() -> dict[str, int]:
        return {"total": _work(n)}

    @app.get("/json")
    async def plain_json() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def _send(app: Any, requests: int, concurrency: int) -> None:
    import httpx
    from opentelemetry import context as otel_context

    # The client is httpx, which otelperf instruments: its CLIENT spans stay out of the workload.
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
            queue = [ROUTES[i % len(ROUTES)] for i in range(requests)]

            async def worker() -> None:
                while queue:
                    response = await client.get(queue.pop())
                    if response.status_code != 200:
                        raise RuntimeError(f"{response.status_code} from the app")

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        otel_context.detach(token)


def child(arm: str, workload: str, requests: int, warmup: int, concurrency: int) -> dict[str, Any]:
    from otelperf.testing import capture, stop_capture

    hz = int(os.environ.get("OTELPERF_PROFILER_HZ", "100"))
    cap = capture(
        budgets={"*": WORKLOADS[workload]}, profiler=arm == "on", profiler_hz=hz, metric_export_interval="1h"
    )
    try:
        app = _app()
        asyncio.run(_send(app, warmup, concurrency))
        cap.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        asyncio.run(_send(app, requests, concurrency))
        cap.flush()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        profiler = cap.runtime.profiler
        findings = [f for f in cap.findings if f.detector == "latency_budget"]
        return {
            "arm": arm,
            "workload": workload,
            "requests": requests,
            "cpu_us": cpu / requests * 1e6,
            "wall_us": wall / requests * 1e6,
            "samples": profiler.samples if profiler is not None else 0,
            "findings": len(findings),
            "profiled_findings": sum(1 for f in findings if "app_profile" in f.details),
        }
    finally:
        stop_capture(cap)


def micro() -> dict[str, float]:
    """The request path's own cost (register + unregister) and one tick's, best of 7, in µs."""
    from otelperf.profiler._sampler import Profiler

    profiler = Profiler()
    n = 20_000
    out: dict[str, float] = {}

    async def measure() -> None:
        def pair() -> None:
            for i in range(n):
                record = profiler.begin(i, None)
                assert record is not None
                profiler.end(record)

        def tick() -> None:
            now = time.time_ns()
            for _ in range(n // 10):
                profiler._tick(now, now - 10_000_000)

        profiler._start = lambda: None  # type: ignore[method-assign]  # no thread: ticks by hand
        best = []
        for _ in range(7):
            t = time.perf_counter()
            pair()
            best.append((time.perf_counter() - t) / n * 1e6)
        out["begin_end_us"] = min(best)
        records = [profiler.begin(i, None) for i in range(4)]  # four requests in flight on this loop
        best = []
        for _ in range(7):
            t = time.perf_counter()
            tick()
            best.append((time.perf_counter() - t) / (n // 10) * 1e6)
            for record in records:  # room for the next run's samples (the cap would stop them)
                assert record is not None
                record.times, record.weights, record.stack_ids = [], [], []
        out["tick_us"] = min(best)

    asyncio.run(measure())
    return out


def lifecycle(rounds: int = 5, cycles: int = 20) -> tuple[float, float]:
    """What a test suite pays per test: capture (init), one request, stop, in ms, off and on
    (median over interleaved rounds). The profiler's thread starts with the request and stops with
    the capture."""
    from otelperf.testing import capture, stop_capture

    app = _app()
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for on in (False, True) if r % 2 == 0 else (True, False):
            t = time.perf_counter()
            for _ in range(cycles):
                cap = capture(profiler=on)
                asyncio.run(_send(app, 1, 1))
                stop_capture(cap)
            times[on].append((time.perf_counter() - t) / cycles * 1000)
    return statistics.median(times[False]), statistics.median(times[True])


def count_instructions(arm: str, workload: str, requests: int, args: argparse.Namespace) -> int:
    """Instructions (all threads, start-up included) of one child run under callgrind."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, str(HERE)]
        command += ["--child", arm, "--workload", workload, "--requests", str(requests)]
        command += ["--warmup", str(args.warmup), "--concurrency", str(args.concurrency)]
        env = os.environ.copy()
        env["OTELPERF_PROFILER_HZ"] = str(max(1, round(args.hz / args.clock_scale)))
        subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no totals in the callgrind output")


def instructions(args: argparse.Namespace) -> None:
    n = args.requests
    print(f"instructions per request (callgrind, (count at {3 * n} - count at {n}) / {2 * n}), all threads")
    print("workload  off            on             on/off")
    for workload in WORKLOADS:
        per: dict[str, float] = {}
        for arm in ARMS:
            low = count_instructions(arm, workload, n, args)
            high = count_instructions(arm, workload, 3 * n, args)
            per[arm] = (high - low) / (2 * n)
        print(f"{workload:8}  {per['off']:13,.0f}  {per['on']:13,.0f}  {per['on'] / per['off']:.4f}")


def run_child(arm: str, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(HERE), "--child", arm, "--workload", workload]
    command += ["--requests", str(args.requests), "--warmup", str(args.warmup)]
    command += ["--concurrency", str(args.concurrency)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ.copy())
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="3 rounds x 300 requests")
    parser.add_argument("--json", type=Path, help="write every arm-round's figures here")
    parser.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    parser.add_argument("--hz", type=float, default=100.0, help="--instructions: the real-time rate")
    parser.add_argument(
        "--clock-scale", type=float, default=50.0, help="--instructions: callgrind's slowdown"
    )
    parser.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=tuple(WORKLOADS), default="within", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.workload, args.requests, args.warmup, args.concurrency)))
        return
    if args.quick:
        args.rounds, args.requests, args.warmup = 3, 300, 50
    if args.instructions:
        instructions(args)
        return
    costs = micro()
    print(
        f"request path: {costs['begin_end_us']:.2f} µs per request (register + unregister); "
        f"sampler: {costs['tick_us']:.1f} µs per tick with 4 requests in flight "
        f"(x 100 ticks/s = {costs['tick_us'] * 100 / 1e4:.2f} % of one core while requests run)"
    )
    off_ms, on_ms = lifecycle()
    print(f"a test's capture + 1 request + stop: {off_ms:.1f} ms off, {on_ms:.1f} ms on")

    results: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for workload in WORKLOADS:
            order = ARMS if r % 2 == 0 else tuple(reversed(ARMS))  # rotate who runs first
            for arm in order:
                result = run_child(arm, workload, args)
                result["round"] = r
                results.append(result)
                print(
                    f"round {r} {workload:6} {arm:3}: {result['cpu_us']:7.1f} CPU µs/request, "
                    f"{result['samples'] / result['requests']:.2f} samples/request, "
                    f"{result['profiled_findings']}/{result['findings']} findings with a profile",
                    file=sys.stderr,
                )

    print(
        f"\nprofiler on vs off: {args.rounds} rounds x {args.requests} requests, "
        f"concurrency {args.concurrency}"
    )
    print("workload  CPU µs/req off   on    ratio on/off (median of rounds)  min    max    added µs/req")
    for workload in WORKLOADS:
        ratios, added, off_us, on_us = [], [], [], []
        for r in range(args.rounds):
            by_arm = {x["arm"]: x for x in results if x["round"] == r and x["workload"] == workload}
            ratios.append(by_arm["on"]["cpu_us"] / by_arm["off"]["cpu_us"])
            added.append(by_arm["on"]["cpu_us"] - by_arm["off"]["cpu_us"])
            off_us.append(by_arm["off"]["cpu_us"])
            on_us.append(by_arm["on"]["cpu_us"])
        print(
            f"{workload:8}  {statistics.median(off_us):13.1f} {statistics.median(on_us):6.1f}"
            f"    {statistics.median(ratios):.4f} ({(statistics.median(ratios) - 1) * 100:+.2f} %)"
            f"               {min(ratios):.4f} {max(ratios):.4f} {statistics.median(added):+8.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
