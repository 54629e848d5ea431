"""Production mode's cost in instructions: the bare app vs otelperf, counted by callgrind.

    .venv/bin/python benchmarks/instructions.py                       # all routes, bare vs production mode
    .venv/bin/python benchmarks/instructions.py --routes /json --arms bare,prod,full

Wall-clock req/s on a shared 2-core machine swings by +-30% between identical runs (overhead.py
measured the bare arm at 1700 and 3000 req/s within one run), which is more than the difference
being measured. Instructions executed do not depend on what else the machine is doing: run twice,
the counts agree to a fraction of a percent. For a server that is CPU-bound on one core,
throughput is inversely proportional to the work per request, so ``bare / arm`` instructions per
request is the throughput ratio the machine would show without noise. It is a proxy: it weighs
every instruction alike (cache misses, syscalls and the GIL are not in it).

Each arm is benchmarks/bench_app.py in uvicorn (1 worker, ``--loop asyncio --http h11``, as in
overhead.py) under ``valgrind --tool=callgrind --instr-atstart=no``, so start-up is not counted:

1. start, warm up the route with ``--warmup`` requests, wait until the server is idle (the
   detector thread and the exporter finish the warm-up's requests; not counted);
2. switch counting on (``callgrind_control -i on``), send ``--requests`` requests to one route
   from this process (10 keep-alive connections), then SIGTERM the server: its flush (detector
   queue, the spans still to be exported, one metric export) is counted, as it belongs to them;
3. instructions per request = every thread's total / requests.

Arms: ``bare`` (no otelperf), ``prod`` (``otelperf.init()`` at import, all detectors on,
``OTELPERF_EXPORT_SHARE=0.1``) and ``full`` (every trace exported). Under callgrind the wall clock
runs ~50x slower than the work, so timed exports (every 1 s for spans, 10 s for metrics) would run
~50x as often per request as in a real run and their fixed costs would be counted that many
times: here spans are exported when a batch of 512 is full and at shutdown, metrics at shutdown.
The instrumented arms export to benchmarks/otlp_sink.py. Needs valgrind (``apt-get install
valgrind``); a route takes 20 s (``/json``) to 2 minutes (``/n-plus-one``) per arm.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # the benchmark's shared process, load and sink helpers

ARMS = ("bare", "prod", "full")
# Fewer requests on the slow routes: callgrind runs them ~50x slower than real time.
DEFAULT_REQUESTS = {"/json": 2000, "/cached": 2000, "/one-query": 600, "/n-plus-one": 200}
TARGET = 0.85
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 600.0


def arm_env(arm: str, db: str, sink_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELPERF_", "BENCH_"))}
    env.update(BENCH_DB=db, PYTHONUNBUFFERED="1", BENCH_ARM="bare" if arm == "bare" else "otelperf")
    if arm == "bare":
        return env
    env.update(
        BENCH_OTELPERF_INIT="1",  # otelperf.init() at import: `otelperf run` would exec under valgrind
        OTEL_EXPORTER_OTLP_ENDPOINT=sink_url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_SERVICE_NAME=f"bench-{arm}",
        **overhead.otelperf_batch_env(),
    )
    env.update(OTEL_BSP_SCHEDULE_DELAY="3600000", OTEL_METRIC_EXPORT_INTERVAL="3600000")  # see the docstring
    if arm == "prod":
        env["OTELPERF_EXPORT_SHARE"] = "0.1"
    return env


def wait_idle(pid: int, timeout: float = 300.0) -> None:
    """Until the server stops using CPU: under callgrind the detector thread and the exporter take
    seconds to finish the warm-up's requests, which must not be counted against the measured ones."""
    deadline = time.monotonic() + timeout
    last = overhead.tree_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = overhead.tree_cpu_seconds(pid)
        if now - last < 0.02:  # under 2% of a core for a second: idle (timers only)
            return
        last = now
    raise RuntimeError(f"the server (pid {pid}) stayed busy for {timeout:.0f} s after its warm-up")


def measure(arm: str, route: str, *, requests: int, warmup: int, db: str, sink_url: str, work: Path) -> float:
    """Instructions per request of ``arm`` serving ``route`` (all threads, flush included)."""
    out = work / f"{arm}{route.replace('/', '_')}"
    out.mkdir()
    port = overhead.free_port()
    server = overhead.Arm(
        name=arm,
        argv_prefix=[
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}/callgrind.out",
        ],
        python=overhead.VENV / "bin" / "python",
        env=arm_env(arm, db, sink_url),
        service=None,
    )
    log = out / "server.log"
    proc = overhead.spawn(server.argv(port), server.env, log)
    try:
        if not overhead.wait_port(port, proc, START_TIMEOUT_S):
            raise RuntimeError(f"{arm}: the server did not start under valgrind (see {log})")
        # Only the measured route: spans a warm-up leaves queued for export are flushed inside the
        # measured window, and another route's (12 spans a request on /n-plus-one) would be counted.
        overhead.load(port, route, warmup, 10)
        wait_idle(proc.pid)  # the warm-up's analysis and export finish outside the count
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--instr=on", str(proc.pid)], check=True, capture_output=True)
        _, errors = overhead.load(port, route, requests, 10)
        if errors:
            raise RuntimeError(f"{arm} {route}: {len(errors)} failed requests, e.g. {errors[0]}")
    finally:
        if not overhead.stop(proc, STOP_TIMEOUT_S):
            raise RuntimeError(f"{arm}: the server did not exit after SIGTERM (see {log})")
    final = out / "callgrind.out"  # written at exit: everything since --zero, all threads
    found = re.search(r"^totals: (\d+)", final.read_text(), re.MULTILINE) if final.exists() else None
    if found is None:
        raise RuntimeError(f"{arm}: no callgrind totals in {final} (see {log})")
    return int(found.group(1)) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", default=",".join(DEFAULT_REQUESTS), help="comma-separated")
    parser.add_argument("--arms", default="bare,prod", help=f"comma-separated subset of {','.join(ARMS)}")
    parser.add_argument("--requests", type=int, default=0, help="per route (0: a default per route)")
    parser.add_argument("--warmup", type=int, default=50, help="requests per route before counting")
    args = parser.parse_args()
    routes = [r for r in args.routes.split(",") if r]
    arms = [a for a in args.arms.split(",") if a]
    unknown = [r for r in routes if r not in DEFAULT_REQUESTS] + [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(
            f"unknown route or arm: {unknown} (routes: {list(DEFAULT_REQUESTS)}, arms: {list(ARMS)})"
        )
    if "bare" not in arms:
        parser.error("the bare arm is the baseline: include it")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install valgrind", file=sys.stderr)
            return 2

    with tempfile.TemporaryDirectory(prefix="otelperf-instructions-") as tmp:
        work = Path(tmp)
        db = str(work / "bench.db")
        subprocess.run(
            [str(overhead.VENV / "bin" / "python"), str(overhead.HERE / "bench_app.py"), "--seed", db],
            check=True,
            capture_output=True,
        )
        sink = overhead.SinkClient(work / "sink.log")
        try:
            per_request: dict[tuple[str, str], float] = {}
            for route in routes:
                n = args.requests or DEFAULT_REQUESTS[route]
                for arm in arms:
                    overhead.log(f"{route} {arm}: {n} requests under callgrind")
                    per_request[arm, route] = measure(
                        arm, route, requests=n, warmup=args.warmup, db=db, sink_url=sink.url, work=work
                    )
                    overhead.log(f"{route} {arm}: {per_request[arm, route] / 1e3:.1f}k instructions/request")
        finally:
            overhead.stop(sink.proc)

    print()
    others = [a for a in arms if a != "bare"]
    header = f"{'route':<12} {'bare':>10}" + "".join(f" {a:>10} {'bare/' + a:>10}" for a in others)
    print("instructions per request (all threads, flush included); bare/arm = the throughput ratio")
    print(f"without machine noise (target for prod: >= {TARGET})")
    print(header)
    for route in routes:
        bare = per_request["bare", route]
        row = f"{route:<12} {bare / 1e3:>9.1f}k"
        for arm in others:
            value = per_request[arm, route]
            row += f" {value / 1e3:>9.1f}k {bare / value:>10.3f}"
        print(row)
    if "prod" in others:
        missed = [r for r in routes if per_request["bare", r] / per_request["prod", r] < TARGET]
        print(
            f"production mode >= {TARGET} of bare: "
            + ("met on every route" if not missed else f"NOT met on {missed}")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
