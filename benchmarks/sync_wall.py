"""Where the wall clock of the sync route goes: per thread CPU, context switches and run-queue wait.

    .venv/bin/python benchmarks/sync_wall.py                          # all variants, 5 rounds
    .venv/bin/python benchmarks/sync_wall.py --variants bare,full,prod --rounds 3 --requests 3000
    .venv/bin/python benchmarks/sync_wall.py --switch-interval 0.001  # sys.setswitchinterval in every arm

The ``/sync`` route of bench_app.py (two SQLAlchemy statements in a ``def`` endpoint) in uvicorn,
1 worker, ``--concurrency`` (8) keep-alive connections, the same server command as overhead.py.
Variants, interleaved round by round in a rotating order (each a fresh server):

- ``bare``: no instrumentation;
- ``full``: ``otelperf run``, every trace exported; ``prod``: export share 0.1;
- ``prod0``: export share 0 (the detectors analyze every request, nothing is exported: no encoding
  or sending, and the exporter's threads stay asleep);
- ``full-nodet``/``prod-nodet``: as ``full``/``prod`` with ``OTELPERF_DETECTORS=none``.

For each arm-round it reads, before and after the measured requests, every thread's kernel counters
(``/proc/<pid>/task/<tid>/``: CPU time, voluntary and involuntary context switches, time spent
runnable but waiting for a CPU) and names the threads (bench_app's ``BENCH_THREADS_FILE`` hook), so
the cost per request can be put on the event loop, AnyIO's worker threads and otelperf's threads.
A voluntary switch is a thread going to sleep: waiting for the GIL, for a lock, for work, for
I/O. Wall time per request is ``1 / req/s`` of the 1-worker server; the report sets the added wall
time beside the added CPU time (paired.py). The counters are read 1.5 s after the load (one batch
delay + one detector wake-up), so the export and analysis of the measured requests are included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # the shared process, load and sink helpers
import paired

ROUTE = "/sync"
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    # name: (overhead.py arm it starts from, extra environment)
    "bare": ("bare", {}),
    "full": ("otelperf", {}),
    "prod": ("otelperf", {"OTELPERF_EXPORT_SHARE": "0.1"}),
    "prod0": ("otelperf", {"OTELPERF_EXPORT_SHARE": "0"}),
    "full-nodet": ("otelperf", {"OTELPERF_DETECTORS": "none"}),
    "prod-nodet": ("otelperf", {"OTELPERF_DETECTORS": "none", "OTELPERF_EXPORT_SHARE": "0.1"}),
    # the detector thread woken every 20 ms instead of 200: finished requests' spans held 10x shorter
    "prod-wake20": ("otelperf", {"OTELPERF_EXPORT_SHARE": "0.1", "BENCH_DETECTOR_WAKE": "0.02"}),
    # the cyclic garbage collector off: what is left of each arm's cost without it
    "bare-nogc": ("bare", {"BENCH_GC_OFF": "1"}),
    "full-nogc": ("otelperf", {"BENCH_GC_OFF": "1"}),
    "prod-nogc": ("otelperf", {"OTELPERF_EXPORT_SHARE": "0.1", "BENCH_GC_OFF": "1"}),
}
SETTLE_S = 1.5  # one batch delay (1 s) + one detector wake-up (0.2 s) + margin
COUNTERS = ("cpu_us", "sys_us", "vol", "invol", "migr", "wait_us")


def _thread_group(name: str) -> str:
    if name == "MainThread":
        return "event loop"
    if name.startswith("AnyIO worker"):
        return "anyio workers"
    if name.startswith("otelperf-send-"):
        return "otelperf-send-*"
    return name


def _others(sink: overhead.SinkClient) -> tuple[float, float, float]:
    """CPU seconds so far of this process (the load generator), of the sink, and of the machine."""
    mine = os.times()
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    busy = sum(int(v) for i, v in enumerate(cpu[:8]) if i not in (3, 4)) / overhead.CLK_TCK
    return mine.user + mine.system, overhead.tree_cpu_seconds(sink.proc.pid), busy


def _minflt(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[7])  # field 10, minflt: all threads


def server_pid(root: int) -> int:
    """The uvicorn process: ``otelperf run`` may start it as a child of its own."""
    for _ in range(100):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
                if b"uvicorn" in cmd and (int(entry) == root or ppid == root):
                    return int(entry)
        time.sleep(0.05)
    return root


def read_threads(pid: int) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            run_ns, wait_ns, _ = Path(f"{base}/schedstat").read_text().split()
            status = Path(f"{base}/status").read_text()
            sched = Path(f"{base}/sched").read_text()
            stat = Path(f"{base}/stat").read_text()
        except OSError:
            continue
        stime_ticks = int(stat[stat.rindex(")") + 2 :].split()[12])  # kernel time: syscalls, futexes
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        # Moves to another CPU (its caches cold there); only with CONFIG_SCHED_DEBUG, else 0.
        migrations = next(
            (int(line.split(":")[1]) for line in sched.splitlines() if line.startswith("se.nr_migrations")), 0
        )
        out[int(tid)] = {
            "cpu_us": int(run_ns) / 1e3,
            "wait_us": int(wait_ns) / 1e3,
            "vol": int(fields["voluntary_ctxt_switches"]),
            "invol": int(fields["nonvoluntary_ctxt_switches"]),
            "migr": migrations,
            "sys_us": stime_ticks / overhead.CLK_TCK * 1e6,
        }
    return out


def thread_names(pid: int, path: Path) -> tuple[dict[int, str], dict[str, float]]:
    """The server's {native thread id: name} and its garbage collector's totals so far."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    for _ in range(100):
        if path.exists() and path.stat().st_size:
            time.sleep(0.02)
            data = json.loads(path.read_text())
            gc_totals = data.pop("gc", {})
            return {int(k): v for k, v in data.items()}, gc_totals
        time.sleep(0.02)
    return {}, {}


@dataclass
class Result:
    arm: str
    round: int
    rps: dict[str, float] = field(default_factory=dict)
    cpu_us: dict[str, float] = field(default_factory=dict)
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # per request, by thread group
    gc: dict[str, float] = field(default_factory=dict)  # collections and µs per request, by generation
    # CPU µs per request of the other parties on the same 2 cores: the load generator (this
    # process), the OTLP sink, and the whole machine (other users included), from /proc/stat.
    minflt: float = 0.0  # the server's minor page faults per request (memory newly mapped and touched)
    client_us: float = 0.0
    sink_us: float = 0.0
    machine_us: float = 0.0


def run_one(
    name: str, rnd: int, opts: argparse.Namespace, *, sink: overhead.SinkClient, db: str, work: Path
) -> Result:
    base_arm, extra = VARIANTS[name]
    arm = overhead.make_arms((base_arm,), sink.url, db, "run")[0]
    names_file = work / f"threads-{name}.json"
    env = {**arm.env, **extra, "BENCH_THREADS_FILE": str(names_file), "OTEL_SERVICE_NAME": f"bench-{name}"}
    if opts.switch_interval:
        env["BENCH_SWITCH_INTERVAL"] = str(opts.switch_interval)
    port = overhead.free_port()
    pin = ["taskset", "-c", opts.pin] if opts.pin else []
    proc = overhead.spawn([*pin, *arm.argv(port)], env, work / f"{name}.log")
    result = Result(name, rnd)
    try:
        if not overhead.wait_port(port, proc, overhead.START_TIMEOUT_S):
            raise RuntimeError(f"{name}: server did not start (see {work / (name + '.log')})")
        pid = server_pid(proc.pid)
        overhead.load(port, ROUTE, opts.warmup, opts.concurrency)
        time.sleep(SETTLE_S)
        gc0 = thread_names(pid, names_file)[1]
        before, others0, flt0 = read_threads(pid), _others(sink), _minflt(pid)
        seconds, errors = overhead.load(port, ROUTE, opts.requests, opts.concurrency)
        others1 = _others(sink)  # the sink's decoding of the last batch is left out: its share is tiny
        time.sleep(SETTLE_S)
        after, flt1 = read_threads(pid), _minflt(pid)
        names, gc1 = thread_names(pid, names_file)
        if errors:
            raise RuntimeError(f"{name}: {len(errors)} failed requests, e.g. {errors[0]}")
    finally:
        overhead.stop(proc)
    result.rps[ROUTE] = opts.requests / seconds
    result.minflt = (flt1 - flt0) / opts.requests
    for gen in ("gen0", "gen1", "gen2"):
        result.gc[f"{gen} n"] = (gc1.get(f"{gen}_n", 0) - gc0.get(f"{gen}_n", 0)) / opts.requests
        result.gc[f"{gen} µs"] = (gc1.get(f"{gen}_s", 0) - gc0.get(f"{gen}_s", 0)) / opts.requests * 1e6
    result.client_us, result.sink_us, result.machine_us = (
        (b - a) / opts.requests * 1e6 for a, b in zip(others0, others1, strict=True)
    )
    total = 0.0
    for tid, now in after.items():
        then = before.get(tid, dict.fromkeys(COUNTERS, 0.0))
        group = result.groups.setdefault(_thread_group(names.get(tid, "?")), dict.fromkeys(COUNTERS, 0.0))
        for key in COUNTERS:
            group[key] += (now[key] - then[key]) / opts.requests
        total += (now["cpu_us"] - then["cpu_us"]) / opts.requests
    # SETTLE_S of idle timers are charged too: a few µs at most over thousands of requests.
    result.cpu_us[ROUTE] = total
    return result


def _counters(c: dict[str, float]) -> str:
    return (
        f"{c['cpu_us']:>7.1f} {c['sys_us']:>7.1f} {c['vol']:>7.2f} {c['invol']:>8.2f} {c['migr']:>6.2f} "
        f"{c['wait_us']:>8.1f}"
    )


def report(results: list[Result], variants: list[str]) -> None:
    print()
    print(f"{ROUTE}: medians over rounds, per request (threads grouped by name)")
    print(
        f"{'variant':<11} {'req/s':>6} {'wall µs':>8} {'CPU µs':>7}  "
        f"{'thread group':<28} {'CPU µs':>7} {'sys µs':>7} {'vol cs':>7} {'invol cs':>8} {'migr':>6} "
        f"{'runq µs':>8}"
    )
    for name in variants:
        mine = [r for r in results if r.arm == name]
        if not mine:
            continue
        rps = statistics.median(r.rps[ROUTE] for r in mine)
        cpu = statistics.median(r.cpu_us[ROUTE] for r in mine)
        groups = sorted(
            {g for r in mine for g in r.groups},
            key=lambda g: -max(r.groups.get(g, {}).get("cpu_us", 0) for r in mine),
        )
        first = f"{name:<11} {rps:>6.0f} {1e6 / rps:>8.0f} {cpu:>7.0f}  "
        for i, g in enumerate(groups):
            med = {k: statistics.median(r.groups.get(g, {}).get(k, 0.0) for r in mine) for k in COUNTERS}
            if med["cpu_us"] < 0.5 and med["vol"] < 0.01:
                continue
            lead = first if i == 0 else " " * len(first)
            print(f"{lead}{g:<28} {_counters(med)}")
        totals = {k: statistics.median(sum(v[k] for v in r.groups.values()) for r in mine) for k in COUNTERS}
        print(f"{' ' * len(first)}{'(all threads)':<28} {_counters(totals)}")
        side = {
            k: statistics.median(getattr(r, k) for r in mine) for k in ("client_us", "sink_us", "machine_us")
        }
        gc = {k: statistics.median(r.gc.get(k, 0.0) for r in mine) for k in mine[0].gc}
        faults = statistics.median(r.minflt for r in mine)
        print(f"{' ' * len(first)}minor page faults per request: {faults:.2f}")
        print(
            f"{' ' * len(first)}garbage collector per request: "
            + ", ".join(
                f"{g} {gc[g + ' n']:.3f} runs {gc[g + ' µs']:.1f} µs" for g in ("gen0", "gen1", "gen2")
            )
        )
        print(
            f"{' ' * len(first)}elsewhere, CPU µs/request: load generator {side['client_us']:.0f}, "
            f"sink {side['sink_us']:.0f}, whole machine {side['machine_us']:.0f} "
            f"(of {(os.cpu_count() or 1) * 1e6 / rps:.0f} available)"
        )
    wall = {ROUTE: _paired_rows(results, variants)}
    paired.print_wall(wall)


def _paired_rows(results: list[Result], variants: list[str]) -> list[paired.Paired]:
    rows = []
    for name in variants:
        if name == "bare":
            continue
        # An arm with the collector off against bare with it off too (bare-nogc itself against bare).
        gc_off = name.endswith("-nogc") and name != "bare-nogc" and "bare-nogc" in variants
        for base in ("bare-nogc",) if gc_off else ("bare",):
            p = paired.paired(results, name, base, ROUTE)
            if p is not None:
                rows.append(p)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {','.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--switch-interval", type=float, default=0.0, help="sys.setswitchinterval, s")
    parser.add_argument(
        "--pin", default="", help="run the server under `taskset -c PIN` (e.g. 1: one core, no GIL ping-pong)"
    )
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    variants = [v for v in opts.variants.split(",") if v]
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant(s) {unknown}")
    if "bare" not in variants:
        parser.error("include bare: it is the baseline")
    work = Path(tempfile.mkdtemp(prefix="otelperf-syncwall-"))
    db = str(work / "bench.db")
    subprocess.run(
        [str(overhead.VENV / "bin" / "python"), str(overhead.HERE / "bench_app.py"), "--seed", db],
        check=True,
        capture_output=True,
    )
    sink = overhead.SinkClient(work / "sink.log")
    results: list[Result] = []
    try:
        for rnd in range(1, opts.rounds + 1):
            shift = (rnd - 1) % len(variants)
            for name in variants[shift:] + variants[:shift]:
                r = run_one(name, rnd, opts, sink=sink, db=db, work=work)
                results.append(r)
                overhead.log(
                    f"round {rnd} {name:<11} {r.rps[ROUTE]:.0f} req/s, {r.cpu_us[ROUTE]:.0f} CPU µs/req"
                )
                sink.reset()
    finally:
        overhead.stop(sink.proc)
    print(
        f"{ROUTE}: {opts.rounds} rounds x {opts.requests} requests, concurrency {opts.concurrency}, "
        f"switch interval {opts.switch_interval or sys.getswitchinterval()} s, {os.cpu_count()} CPUs, "
        f"server pinned to CPU {opts.pin or '(none)'}"
    )
    report(results, variants)
    if opts.json:
        opts.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
