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
overhead.py) under ``valgrind --tool=callgrind --instr-atstart=no``, so start-up is not counted.
A run:

1. start, warm up the route with ``--warmup`` requests, wait until the server is idle (the
   detector thread and the exporter finish the warm-up's requests; not counted);
2. switch counting on (``callgrind_control -i on``), send the run's requests to one route from
   this process (10 keep-alive connections), then SIGTERM the server: its flush (detector queue,
   the spans still to be exported, one metric export) is counted;
3. the count is every thread's total.

Each arm and route is run twice, with N and 3N requests (``--requests``), and the result is the
cost of an additional request, ``(count at 3N - count at N) / 2N``: what a busy server pays per
request. What does not grow with requests cancels out and is printed apart as the fixed cost of
a run: the metric export at exit above all (a few million instructions, which a real server pays
once per 10 s interval, not once per few hundred requests).

Two things of real time are put right for callgrind, under which the wall clock runs ~50x slower
than the work:

- timed exports (every 1 s for spans, 10 s for metrics) would run ~50x as often per request as in
  a real run: here spans are exported when a batch of 512 is full and at exit, metrics at exit;
- the detectors' time thresholds (slow query, N+1) are multiplied by ``--clock-scale`` (100), or
  they would find slow queries and N+1s that a real run does not have, and production mode would
  export those traces whole. Each run checks how many traces reached the sink: every one for
  ``full``; for ``prod`` the export share's (10%, within 4 standard deviations), which is what a
  real run of this app exports, having no findings.

Arms: ``bare`` (no otelperf), ``prod`` (``otelperf.init()`` at import, all detectors on,
``OTELPERF_EXPORT_SHARE=0.1``) and ``full`` (every trace exported); to split the cost, ``prod0``
(export share 0: instrumentation and detectors, no export) and ``nodet`` (``full`` without
detectors). The instrumented arms export
to benchmarks/otlp_sink.py. Needs valgrind (``apt-get install valgrind``); a route takes 1 minute
(``/json``) to 5 minutes (``/n-plus-one``) per arm.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # the benchmark's shared process, load and sink helpers

ARMS = ("bare", "prod", "full", "prod0", "nodet")
# Fewer requests on the slow routes: callgrind runs them ~50x slower than real time.
DEFAULT_REQUESTS = {"/json": 1000, "/cached": 1000, "/one-query": 300, "/n-plus-one": 100, "/sync": 250}
TARGET = 0.85
PROD_SHARE = 0.1
CLOCK_SCALE = 100.0
START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 600.0
LOAD_TIMEOUT_S_PER_REQUEST = 5.0  # under callgrind a /n-plus-one request takes ~0.2-1 s of wall clock


def arm_env(arm: str, db: str, sink_url: str, clock_scale: float) -> dict[str, str]:
    env = overhead.clean_env()
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
    env["OTELPERF_STRICT"] = "1"  # a setting out of range must stop the run, not fall back unseen
    env.update(scaled_thresholds(clock_scale))
    if arm == "prod":
        env["OTELPERF_EXPORT_SHARE"] = str(PROD_SHARE)
    if arm == "prod0":  # the detectors see every request, nothing is exported: their cost alone
        env["OTELPERF_EXPORT_SHARE"] = "0"
    if arm == "nodet":  # every trace exported, no detector: the export's cost alone
        env["OTELPERF_DETECTORS"] = "none"
    return env


def scaled_thresholds(scale: float) -> dict[str, str]:
    """The detectors' time thresholds times ``scale``: under callgrind a request takes ~50x as long
    as at real speed, and with the default thresholds the detectors would report slow queries and
    N+1s that a real run does not have (10 SQLite queries are ~2 ms, not 50), and production mode
    would export those traces whole. Scaled, they decide as at real speed; the run checks that by
    the share of traces exported (see ``check_exports``)."""
    from otelperf.config import Settings

    defaults = Settings()
    return {
        "OTELPERF_SLOW_QUERY_MS": f"{defaults.slow_query_ms * scale:g}",
        "OTELPERF_SLOW_QUERY_CRITICAL_MS": f"{defaults.slow_query_critical_ms * scale:g}",
        "OTELPERF_N_PLUS_ONE_MIN_MS": f"{defaults.n_plus_one_min_ms * scale:g}",
    }


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


@dataclass
class Run:
    instructions: int  # every thread, from the zeroing after the warm-up to the exit
    sent: int  # requests, warm-up included
    exported: int  # traces the sink received with this route's SERVER span as root


def measure(
    arm: str,
    route: str,
    *,
    requests: int,
    warmup: int,
    db: str,
    sink: overhead.SinkClient,
    work: Path,
    clock_scale: float,
) -> Run:
    """One server run of ``arm``: ``requests`` on ``route`` counted, after ``warmup`` not counted."""
    out = work / f"{arm}{route.replace('/', '_')}_{requests}"
    out.mkdir()
    sink.reset()
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
        env=arm_env(arm, db, sink.url, clock_scale),
        service=None,
    )
    log = out / "server.log"
    proc = overhead.spawn(server.argv(port), server.env, log)
    try:
        if not overhead.wait_port(port, proc, START_TIMEOUT_S):
            raise RuntimeError(f"{arm}: the server did not start under valgrind (see {log})")
        # Only the measured route: spans a warm-up leaves queued for export are flushed inside the
        # measured window, and another route's (12 spans a request on /n-plus-one) would be counted.
        overhead.load(port, route, warmup, 10, timeout=LOAD_TIMEOUT_S_PER_REQUEST * warmup + 60)
        wait_idle(proc.pid)  # the warm-up's analysis and export finish outside the count
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "--instr=on", str(proc.pid)], check=True, capture_output=True)
        _, errors = overhead.load(
            port, route, requests, 10, timeout=LOAD_TIMEOUT_S_PER_REQUEST * requests + 60
        )
        if errors:
            raise RuntimeError(f"{arm} {route}: {len(errors)} failed requests, e.g. {errors[0]}")
    finally:
        if not overhead.stop(proc, STOP_TIMEOUT_S):
            raise RuntimeError(f"{arm}: the server did not exit after SIGTERM (see {log})")
    final = out / "callgrind.out"  # written at exit: everything since --zero, all threads
    found = re.search(r"^totals: (\d+)", final.read_text(), re.MULTILINE) if final.exists() else None
    if found is None:
        raise RuntimeError(f"{arm}: no callgrind totals in {final} (see {log})")
    counts = sink.counts()["services"].get(f"bench-{arm}", {})
    exported = overhead.per_request(SimpleNamespace(counts=counts), route)  # type: ignore[arg-type]
    return Run(int(found.group(1)), warmup + requests, exported["traces"] if exported else 0)


def keep_output(work: Path, keep: Path, arm: str, route: str, requests: int) -> Path:
    name = f"{arm}{route.replace('/', '_')}_{requests}"
    keep.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(work / name / "callgrind.out", keep / f"{name}.callgrind.out"))


def check_exports(arm: str, route: str, run: Run) -> str | None:
    """Whether the detectors decided as at real speed: production mode exports a share of this app's
    traces (it has no finding at real speed), full export every one. None when it did, else why not."""
    if arm == "bare":
        return None
    if arm in ("full", "nodet"):
        return None if run.exported == run.sent else f"{run.exported} traces exported for {run.sent} requests"
    if arm == "prod0":
        return None if run.exported == 0 else f"{run.exported} traces exported at share 0: findings?"
    low, high = overhead.share_range(run.sent, PROD_SHARE)
    if low <= run.exported <= high:
        return None
    return (
        f"{run.exported} traces exported for {run.sent} requests at share {PROD_SHARE} "
        f"(expected {low}-{high}): findings a real run would not have? (raise --clock-scale)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", default=",".join(DEFAULT_REQUESTS), help="comma-separated")
    parser.add_argument("--arms", default="bare,prod", help=f"comma-separated subset of {','.join(ARMS)}")
    parser.add_argument(
        "--requests",
        type=int,
        default=0,
        help="N: runs of N and 3N requests per route and arm (0: a default per route)",
    )
    parser.add_argument(
        "--clock-scale",
        type=float,
        default=CLOCK_SCALE,
        help="multiply the detectors' time thresholds by this (callgrind runs requests ~50x slower)",
    )
    parser.add_argument("--warmup", type=int, default=50, help="requests per route before counting")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="copy each run's callgrind output into this folder (for callgrind_annotate: where it went)",
    )
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
        marginal: dict[tuple[str, str], float] = {}
        fixed: dict[tuple[str, str], float] = {}
        problems: list[str] = []
        try:
            for route in routes:
                n = args.requests or DEFAULT_REQUESTS[route]
                for arm in arms:
                    runs = []
                    for count in (n, 3 * n):
                        overhead.log(f"{route} {arm}: {count} requests under callgrind")
                        run = measure(
                            arm,
                            route,
                            requests=count,
                            warmup=args.warmup,
                            db=db,
                            sink=sink,
                            work=work,
                            clock_scale=args.clock_scale,
                        )
                        problem = check_exports(arm, route, run)
                        if args.keep is not None:
                            kept = keep_output(work, args.keep, arm, route, count)
                            overhead.log(f"{route} {arm}: callgrind output kept in {kept}")
                        overhead.log(
                            f"{route} {arm}: {run.instructions / count / 1e3:.1f}k instructions/request, "
                            f"{run.exported} of {run.sent} traces exported"
                            + (f" - {problem}" if problem else "")
                        )
                        if problem:
                            problems.append(f"{route} {arm}: {problem}")
                        runs.append(run)
                    small, large = runs
                    marginal[arm, route] = (large.instructions - small.instructions) / (2 * n)
                    fixed[arm, route] = small.instructions - n * marginal[arm, route]
                    overhead.log(
                        f"{route} {arm}: {marginal[arm, route] / 1e3:.1f}k instructions per added request"
                    )
        finally:
            overhead.stop(sink.proc)

    print()
    others = [a for a in arms if a != "bare"]
    header = f"{'route':<12} {'bare':>10}" + "".join(f" {a:>10} {'bare/' + a:>10}" for a in others)
    print("instructions per additional request (all threads: (count at 3N - count at N) / 2N);")
    print(f"bare/arm = the throughput ratio without machine noise (target for prod: >= {TARGET})")
    print(header)
    for route in routes:
        bare = marginal["bare", route]
        row = f"{route:<12} {bare / 1e3:>9.1f}k"
        for arm in others:
            value = marginal[arm, route]
            row += f" {value / 1e3:>9.1f}k {bare / value:>10.3f}"
        print(row)
    print()
    print("fixed cost per run (what does not grow with requests: the exit's flush, one metric export)")
    for route in routes:
        print(f"{route:<12}" + "".join(f" {arm} {fixed[arm, route] / 1e6:6.1f}M" for arm in arms))
    for problem in problems:
        print(f"WARNING {problem}")
    if "prod" in others:
        missed = [r for r in routes if marginal["bare", r] / marginal["prod", r] < TARGET]
        print(
            f"production mode >= {TARGET} of bare: "
            + ("met on every route" if not missed else f"NOT met on {missed}")
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
