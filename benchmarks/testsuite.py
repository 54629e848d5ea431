"""What otelperf costs a FastAPI + SQLAlchemy app's own pytest suite: bare vs plain OpenTelemetry vs otelperf.

    .venv/bin/python benchmarks/testsuite.py                   # 5 interleaved rounds, 300 tests a run
    .venv/bin/python benchmarks/testsuite.py --rounds 3 --tests 150 --arms bare,plugin,otelperf
    .venv/bin/python benchmarks/testsuite.py --profile otelperf --tests 150   # cProfile one arm's run
    .venv/bin/python benchmarks/testsuite.py --startup         # start-up instructions per arm (callgrind)

A test suite is a workload of its own: it creates an app, an engine, a schema and sessions *per
test*, then makes a handful of short requests through ``TestClient`` against in-memory SQLite, all
in one process. Per-app or per-engine setup, instrumentation that patches each new engine, the
detectors' per-trace work and the pytest plugin weigh far more there than in a long-running server.
This script writes such a suite into a temporary folder (an app factory with ``def`` and ``async
def`` routes and a ``get_db`` dependency, function-scoped ``engine``/``client`` fixtures as in
FastAPI's testing recipe, ``--tests`` tests of 1-4 requests each) and runs it as a user would:

- ``bare``: ``python -m pytest -p no:otelperf`` in .venv (otelperf installed, its plugin kept out)
- ``plugin``: ``python -m pytest`` in .venv: otelperf's pytest plugin auto-loads (``pytest11`` entry
  point) as it does in any project that has otelperf installed, and nothing else of otelperf runs
- ``bare-plain``: ``python -m pytest`` in .venv-plain (SQLAlchemy 2.0: the plain arm's baseline)
- ``plain``: ``opentelemetry-instrument ... python -m pytest`` in .venv-plain (contrib fastapi and
  sqlalchemy instrumentors, OTLP/HTTP to benchmarks/otlp_sink.py)
- ``otelperf``: ``otelperf run -- python -m pytest`` in .venv (OTLP/HTTP to the same sink, the
  plugin loaded as it is for a user)

Rounds interleave the arms in a rotating order; each arm-round is one pytest process, timed from
outside (wall clock, and CPU from the children's rusage). The report gives per-arm medians and the
median of per-round ratios against the arm's baseline (paired.py): on this shared 2-core machine the
suite's own time swings by tens of percent between rounds; arms run back to back are paired.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # venvs, the sink and the batch settings shared with the server benchmark
import paired

SUITE = "suite"  # the one "route" of paired.py's tables
ARMS = ("bare", "plugin", "bare-plain", "plain", "otelperf")
# Diagnostic arms (not run by default): the otelperf arm with one part switched off, to find where
# its cost goes.
DIAGNOSTIC = {
    "otelperf-noplugin": (["-p", "no:otelperf"], {}),
    "otelperf-nodet": ([], {"OTELPERF_DETECTORS": "none"}),
    "otelperf-noinstr": ([], {"OTELPERF_INSTRUMENT": "none"}),
    "otelperf-noexport": ([], {"OTELPERF_EXPORT_SHARE": "0"}),
}
BASELINE = {"plugin": "bare", "plain": "bare-plain", "otelperf": "bare", **dict.fromkeys(DIAGNOSTIC, "bare")}

APP = """
from __future__ import annotations

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import ForeignKey, Integer, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    total: Mapped[int] = mapped_column(Integer)


class CustomerIn(BaseModel):
    name: str


class OrderIn(BaseModel):
    total: int


def make_engine():
    # FastAPI's testing recipe: one in-memory database per engine, shared by its sessions.
    engine = create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )
    Base.metadata.create_all(engine)
    return engine


def create_app(engine) -> FastAPI:
    app = FastAPI()

    def get_db():
        with Session(engine) as session:
            yield session

    @app.post("/customers", status_code=201)
    def create_customer(body: CustomerIn, db: Session = Depends(get_db)) -> dict:
        customer = Customer(name=body.name)
        db.add(customer)
        db.commit()
        return {"id": customer.id, "name": customer.name}

    @app.get("/customers/{customer_id}")
    def get_customer(customer_id: int, db: Session = Depends(get_db)) -> dict:
        customer = db.get(Customer, customer_id)
        if customer is None:
            raise HTTPException(status_code=404, detail="no such customer")
        return {"id": customer.id, "name": customer.name}

    @app.post("/customers/{customer_id}/orders", status_code=201)
    def create_order(customer_id: int, body: OrderIn, db: Session = Depends(get_db)) -> dict:
        if db.get(Customer, customer_id) is None:
            raise HTTPException(status_code=404, detail="no such customer")
        order = Order(customer_id=customer_id, total=body.total)
        db.add(order)
        db.commit()
        return {"id": order.id}

    @app.get("/customers/{customer_id}/summary")
    def summary(customer_id: int, db: Session = Depends(get_db)) -> dict:
        count, total = db.execute(
            select(func.count(Order.id), func.coalesce(func.sum(Order.total), 0)).where(
                Order.customer_id == customer_id
            )
        ).one()
        return {"orders": count, "total": total}

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    return app
"""

CONFTEST = """
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from suite_app import create_app, make_engine


@pytest.fixture
def engine():
    engine = make_engine()
    yield engine
    engine.dispose()


@pytest.fixture
def client(engine):
    with TestClient(create_app(engine)) as c:
        yield c
"""

TESTS = """
from __future__ import annotations

import os

import pytest

N = int(os.environ.get("SUITE_TESTS", "300")) // 4


@pytest.mark.parametrize("i", range(N))
def test_create_and_read(client, i):
    created = client.post("/customers", json={"name": f"c{i}"})
    assert created.status_code == 201
    got = client.get(f"/customers/{created.json()['id']}")
    assert got.json()["name"] == f"c{i}"


@pytest.mark.parametrize("i", range(N))
def test_orders_summary(client, i):
    cid = client.post("/customers", json={"name": "x"}).json()["id"]
    for total in (i, 2 * i):
        assert client.post(f"/customers/{cid}/orders", json={"total": total}).status_code == 201
    assert client.get(f"/customers/{cid}/summary").json() == {"orders": 2, "total": 3 * i}


@pytest.mark.parametrize("i", range(N))
def test_not_found(client, i):
    assert client.get(f"/customers/{10_000 + i}").status_code == 404


@pytest.mark.parametrize("i", range(N))
def test_health(client, i):
    assert client.get("/health").json() == {"ok": True}
"""


def write_suite(folder: Path) -> None:
    (folder / "suite_app.py").write_text(APP)
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_api.py").write_text(TESTS)
    # Its own rootdir: no pytest configuration of the checkout applies.
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -q -p no:cacheprovider\n")


def arm_command(arm: str, *, sink_url: str, tests: int) -> tuple[list[str], dict[str, str]]:
    env = overhead.clean_env()
    env.update(SUITE_TESTS=str(tests), PYTHONDONTWRITEBYTECODE="1")
    export = {
        **overhead.otelperf_batch_env(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": f"suite-{arm}",
    }
    venv, plain = overhead.VENV / "bin", overhead.PLAIN_VENV / "bin"
    if arm in ("bare-plain", "plain"):
        env.pop("PYTHONPATH", None)  # a checkout's src/ on the path would put otelperf in the plain venv
    pytest_argv = ["-m", "pytest", "-x"]
    if arm == "bare":
        return [str(venv / "python"), *pytest_argv, "-p", "no:otelperf"], env
    if arm == "plugin":
        return [str(venv / "python"), *pytest_argv], env
    if arm == "bare-plain":
        return [str(plain / "python"), *pytest_argv], env
    if arm == "plain":
        instrument = [str(plain / "opentelemetry-instrument"), "--traces_exporter", "otlp"]
        instrument += ["--metrics_exporter", "otlp", "--logs_exporter", "none"]
        return [*instrument, str(plain / "python"), *pytest_argv], {**env, **export}
    if arm == "otelperf" or arm in DIAGNOSTIC:
        extra_argv, extra_env = DIAGNOSTIC.get(arm, ([], {}))
        argv = [str(venv / "otelperf"), "run", "--", str(venv / "python"), *pytest_argv, *extra_argv]
        return argv, {**env, **export, **extra_env}
    raise ValueError(arm)


@dataclass
class SuiteRun:
    arm: str
    round: int
    seconds: float = 0.0
    cpu_s: float = 0.0
    rps: dict[str, float] = field(default_factory=dict)  # tests per second (paired.py's "req/s")
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU µs per test
    spans: dict[str, int] = field(default_factory=dict)  # exported spans by "category kind", from the sink


def run_suite(
    arm: str,
    rnd: int,
    *,
    folder: Path,
    sink_url: str,
    tests: int,
    prefix: list[str],
    wrapper: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> SuiteRun:
    argv, env = arm_command(arm, sink_url=sink_url, tests=tests)
    env.update(extra_env or {})
    i = next(i for i, a in enumerate(argv) if a.endswith("/python"))
    # prefix (--profile): python -m cProfile -o FILE -m pytest ...; wrapper: valgrind ... python ...
    argv = [*argv[:i], *(wrapper or []), argv[i], *prefix, *argv[i + 1 :]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=folder, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"{arm}: pytest exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run = SuiteRun(arm, rnd, seconds, cpu)
    run.rps[SUITE] = tests / seconds
    run.cpu_us[SUITE] = cpu / tests * 1e6
    return run


def exported_spans(sink: overhead.SinkClient, arm: str) -> dict[str, int]:
    """What the arm exported (the process flushed at exit), by the sink's category and span kind."""
    got = sink.counts()["services"].get(f"suite-{arm}", {})
    out: dict[str, int] = {}
    for s in got.get("spans_by_name_kind", []):
        key = f"{s['category']} {s['kind']}"
        out[key] = out.get(key, 0) + s["count"]
    return out


def count_instructions(arms: list[str], *, folder: Path, sink_url: str, tests: int) -> None:
    """Each arm under callgrind with ``tests`` and 3x ``tests`` tests: instructions per added test
    (what grows with the suite: per app, engine, request) and the fixed cost (interpreter and pytest
    start-up, imports, ``init()``, the flush at exit), free of the machine's noise."""
    # Timed exports would fire ~50x as often per test under callgrind's slow clock: batches go when
    # full and at exit, in both instrumented arms alike.
    slow_clock = {"OTEL_BSP_SCHEDULE_DELAY": "3600000", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
    per_test: dict[str, float] = {}
    fixed: dict[str, float] = {}
    for arm in arms:
        counts = []
        for n in (tests, 3 * tests):
            out = folder / f"callgrind-{arm}-{n}.out"
            wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            run = run_suite(
                arm,
                1,
                folder=folder,
                sink_url=sink_url,
                tests=n,
                prefix=[],
                wrapper=wrapper,
                extra_env=slow_clock if arm not in ("bare", "plugin", "bare-plain") else {},
            )
            found = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
            if found is None:
                raise RuntimeError(f"{arm}: no callgrind totals in {out}")
            counts.append(int(found.group(1)))
            overhead.log(f"{arm}: {n} tests, {counts[-1] / 1e9:.2f} G instructions ({run.seconds:.0f} s)")
        per_test[arm] = (counts[1] - counts[0]) / (2 * tests)
        fixed[arm] = counts[0] - tests * per_test[arm]
    print()
    print(f"instructions (callgrind, every thread), runs of {tests} and {3 * tests} tests")
    print(f"{'arm':<18} {'per test':>10} {'vs base':>8} {'fixed':>9} {'vs base':>8}")
    for arm in arms:
        base = BASELINE.get(arm)
        ratio = f"{per_test[arm] / per_test[base]:.3f}" if base in per_test else "-"
        fixed_ratio = f"{fixed[arm] / fixed[base]:.3f}" if base in fixed else "-"
        print(f"{arm:<18} {per_test[arm] / 1e6:>9.2f}M {ratio:>8} {fixed[arm] / 1e9:>8.2f}G {fixed_ratio:>8}")
    if {"plain", "bare-plain", "otelperf", "bare"} <= set(arms):
        o = per_test["otelperf"] - per_test["bare"]
        p = per_test["plain"] - per_test["bare-plain"]
        print(f"added per test: otelperf {o / 1e6:.2f}M, plain {p / 1e6:.2f}M, otelperf/plain {o / p:.2f}")


def count_startup(arms: list[str], *, folder: Path, sink_url: str, tests: int) -> None:
    """Each arm once under callgrind with ``pytest --collect-only``: the interpreter, pytest and the
    plugins, the suite's imports, ``init()`` and the flush at exit, and no test. The fixed cost of
    ``--callgrind`` without its extrapolation. The wrappers' own processes (``otelperf run``,
    ``opentelemetry-instrument``) are not counted, only the interpreter they start."""
    slow_clock = {"OTEL_BSP_SCHEDULE_DELAY": "3600000", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
    counts: dict[str, int] = {}
    for arm in arms:
        out = folder / f"callgrind-startup-{arm}.out"
        wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        env = {"PYTEST_ADDOPTS": "--collect-only"}
        if arm not in ("bare", "plugin", "bare-plain"):
            env.update(slow_clock)
        run_suite(
            arm, 1, folder=folder, sink_url=sink_url, tests=tests, prefix=[], wrapper=wrapper, extra_env=env
        )
        found = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"{arm}: no callgrind totals in {out}")
        counts[arm] = int(found.group(1))
        overhead.log(f"{arm}: start-up {counts[arm] / 1e6:.1f}M instructions")
    print()
    print("start-up instructions (callgrind, every thread; pytest --collect-only: imports, init, exit)")
    print(f"{'arm':<18} {'start-up':>10} {'added':>9}")
    for arm in arms:
        base = BASELINE.get(arm)
        added = f"{(counts[arm] - counts[base]) / 1e6:.1f}M" if base in counts else "-"
        print(f"{arm:<18} {counts[arm] / 1e6:>9.1f}M {added:>9}")


def report(results: list[SuiteRun], arms: list[str], tests: int) -> None:
    print()
    print(f"{tests} tests a run; medians over rounds (min-max)")
    print(f"{'arm':<11} {'rounds':>6} {'wall s':>7} {'(min-max)':>13} {'CPU s':>7} {'ms/test':>8}")
    for arm in arms:
        mine = [r for r in results if r.arm == arm]
        if not mine:
            continue
        wall = [r.seconds for r in mine]
        mid, cpu = statistics.median(wall), statistics.median(r.cpu_s for r in mine)
        spread = f"({min(wall):.1f}-{max(wall):.1f})"
        print(f"{arm:<11} {len(mine):>6} {mid:>7.2f} {spread:>13} {cpu:>7.2f} {mid / tests * 1e3:>8.2f}")
    print()
    print("paired by round (same round, back to back): time ratio = arm wall / baseline wall, medians")
    heads = f"{'time ratio':>10} {'(min-max)':>13} {'added ms/test':>14} {'added CPU ms/test':>18}"
    print(f"{'arm':<11} {'vs':<11} {heads}")
    for arm, base in BASELINE.items():
        for b in dict.fromkeys((base, "bare")):
            if arm in arms and b in arms:
                p = paired.paired(results, arm, b, SUITE)
                if p is not None:
                    # paired.py's ratio is of rates; a suite's time ratio is its inverse.
                    added_cpu = "-" if p.added_cpu_us is None else f"{p.added_cpu_us / 1e3:.2f}"
                    print(
                        f"{arm:<11} {b:<11} {1 / p.ratio:>10.3f} "
                        f"{f'({1 / p.ratio_max:.2f}-{1 / p.ratio_min:.2f})':>13} "
                        f"{p.added_wall_us / 1e3:>14.2f} {added_cpu:>18}"
                    )
    print()
    print("spans exported per test (last round; a fair comparison wants the same server and db spans):")
    for arm in arms:
        last = [r for r in results if r.arm == arm][-1:]
        if last and last[0].spans:
            print(
                f"  {arm:<11} " + ", ".join(f"{k} {v / tests:.2f}" for k, v in sorted(last[0].spans.items()))
            )
    added = {
        arm: paired.paired(results, arm, BASELINE[arm], SUITE) for arm in ("plain", "otelperf") if arm in arms
    }
    if all(added.values()) and len(added) == 2:
        o, p = added["otelperf"], added["plain"]
        assert o is not None and p is not None
        if p.added_wall_us > 0:
            print(
                f"otelperf added time / plain added time (each against its own baseline): "
                f"{o.added_wall_us / p.added_wall_us:.2f} (goal: <= 1)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arms",
        default=",".join(ARMS),
        help=f"comma-separated, of {','.join(ARMS)} and the diagnostic {','.join(DIAGNOSTIC)}",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tests", type=int, default=300, help="tests per run (a multiple of 4)")
    parser.add_argument(
        "--profile", metavar="ARM", help="instead: run ARM once under cProfile and print the top functions"
    )
    parser.add_argument("--keep", type=Path, help="with --profile: write the .prof file here")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="instead: count instructions per added test and fixed, with --tests N and 3N (needs valgrind)",
    )
    parser.add_argument(
        "--startup",
        action="store_true",
        help="instead: count each arm's start-up instructions (pytest --collect-only; needs valgrind)",
    )
    opts = parser.parse_args()
    arms = [a for a in opts.arms.split(",") if a]
    known = (*ARMS, *DIAGNOSTIC)
    if unknown := [a for a in arms + ([opts.profile] if opts.profile else []) if a not in known]:
        parser.error(f"unknown arm(s) {unknown}; choose from {known}")
    if {"plain", "bare-plain"} & {*arms, opts.profile}:
        overhead.ensure_plain_venv()
    folder = Path(tempfile.mkdtemp(prefix="otelperf-suite-"))
    write_suite(folder)
    sink = overhead.SinkClient(folder / "sink.log")
    try:
        if opts.profile:
            prof = opts.keep or folder / f"{opts.profile}.prof"
            run = run_suite(
                opts.profile,
                1,
                folder=folder,
                sink_url=sink.url,
                tests=opts.tests,
                prefix=["-m", "cProfile", "-o", str(prof)],
            )
            print(f"{opts.profile}: {run.seconds:.2f} s wall, {run.cpu_s:.2f} s CPU under cProfile; {prof}")
            import pstats

            stats = pstats.Stats(str(prof))
            stats.sort_stats("cumulative").print_stats(40)
            return 0
        if opts.startup:
            count_startup(arms, folder=folder, sink_url=sink.url, tests=opts.tests)
            return 0
        if opts.callgrind:
            count_instructions(arms, folder=folder, sink_url=sink.url, tests=opts.tests)
            return 0
        results: list[SuiteRun] = []
        for rnd in range(1, opts.rounds + 1):
            shift = (rnd - 1) % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                r = run_suite(arm, rnd, folder=folder, sink_url=sink.url, tests=opts.tests, prefix=[])
                results.append(r)
                overhead.log(f"round {rnd} {arm:<11} {r.seconds:6.2f} s wall {r.cpu_s:6.2f} s CPU")
                r.spans = exported_spans(sink, arm)
                sink.reset()
        report(results, arms, opts.tests)
        return 0
    finally:
        overhead.stop(sink.proc)


if __name__ == "__main__":
    sys.exit(main())
