"""What call sites cost per statement: SQLAlchemy statements with call sites on vs off, side by side.

    .venv/bin/python benchmarks/callsite.py [--requests 300] [--rounds 7]
    .venv/bin/python benchmarks/callsite.py --instructions   # instruction counts under callgrind

Two workloads against in-memory SQLite, so the statements are cheap and otelperf's own cost shows:
``orm``, a parent span around a session that loads 20 authors and lazily loads each one's books
(21 statements, the N+1 shape, with ~15 SQLAlchemy frames between the attribute access and the
DBAPI call), ``core``, 40 Core lookups by id from a helper function (~7 frames), and ``async``, the
same 40 lookups as the asyncio extension runs them (in a greenlet, the call site on the stack of
the greenlet that awaits it). Three arms:
``bare`` (not instrumented), ``off`` (instrumented, ``call_sites=False``) and ``on`` (the
default); the instrumentor is installed and removed between them, in one process, and every arm
gets the same SDK TracerProvider (always on, no exporter). Printed per workload: the minimum over
rounds of µs per statement of each arm, ``on - off`` (the added cost per statement; the goal is
at most 1 µs) and the ratios.

Wall clock on a shared machine is noisy. ``--instructions`` counts instructions per statement
under ``valgrind --tool=callgrind`` instead (needs valgrind): one process per workload, the arms
in the order bare, off, on, on, off, bare, each counted on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.util import greenlet_spawn

AUTHORS = 20
STATEMENTS = {"orm": AUTHORS + 1, "core": 40, "async": 40}  # per request
ARMS = ("bare", "off", "on")
ORDER = ("bare", "off", "on", "on", "off", "bare")  # under callgrind: each arm early and late


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    books: Mapped[list[Book]] = relationship()


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("author.id"))


def build(workload: str) -> tuple[Callable[[], None], Callable[[str], None]]:
    """(one request of ``workload``, switch to an arm)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from otelperf.config import Settings
    from otelperf.instrumentation._base import InstrumentContext
    from otelperf.instrumentation.sqlalchemy import INSTRUMENTOR

    tracer = TracerProvider().get_tracer("bench")
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")
    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(Author(id=i, books=[Book(), Book()]) for i in range(AUTHORS))
        session.commit()
    by_id = sa.select(Book.__table__.c.id).where(Book.__table__.c.author_id == sa.bindparam("id"))

    def lookup(conn: Any, author_id: int) -> None:
        conn.execute(by_id, {"id": author_id}).all()

    def orm_request() -> None:
        with tracer.start_as_current_span("request"), Session(engine) as session:
            for author in session.scalars(sa.select(Author)).all():
                len(author.books)  # a lazy load

    def core_request() -> None:
        with tracer.start_as_current_span("request"), engine.connect() as conn:
            for author_id in range(STATEMENTS[workload]):
                lookup(conn, author_id % AUTHORS)

    loop = asyncio.new_event_loop()

    async def lookups(conn: Any) -> None:
        for author_id in range(STATEMENTS[workload]):
            # What AsyncConnection.execute does: the statement runs in a greenlet whose stack ends
            # in SQLAlchemy; the call site is this line, on the stack of the greenlet that waits.
            await greenlet_spawn(conn.execute, by_id, {"id": author_id % AUTHORS})

    def async_request() -> None:
        with tracer.start_as_current_span("request"), engine.connect() as conn:
            loop.run_until_complete(lookups(conn))

    def switch(arm: str) -> None:
        INSTRUMENTOR.uninstrument()
        if arm != "bare":
            INSTRUMENTOR.instrument(InstrumentContext(tracer, meter, Settings(call_sites=arm == "on")))

    requests = {"orm": orm_request, "core": core_request, "async": async_request}
    return requests[workload], switch


def _measure(request: Callable[[], None], requests: int) -> float:
    for _ in range(20):
        request()  # warm the caches (statements, call sites) of this arm
    gc.collect()
    gc.disable()  # a collection falls at a different statement in each arm: not what is measured
    try:
        start = time.perf_counter()
        for _ in range(requests):
            request()
        return time.perf_counter() - start
    finally:
        gc.enable()


def wall_clock(workload: str, requests: int, rounds: int) -> dict[str, float]:
    """Minimum over rounds of µs per statement, per arm."""
    request, switch = build(workload)
    best = dict.fromkeys(ARMS, float("inf"))
    for _ in range(rounds):
        for arm in ARMS:
            switch(arm)
            elapsed = _measure(request, requests)
            best[arm] = min(best[arm], elapsed / requests / STATEMENTS[workload] * 1e6)
    switch("bare")
    return best


def _child(workload: str, requests: int) -> None:
    """Under callgrind: the arms in the order ORDER, each counted and dumped on its own."""
    request, switch = build(workload)
    pid = str(os.getpid())
    for arm in ORDER:
        switch(arm)
        for _ in range(20):
            request()
        gc.collect()
        gc.disable()
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        for _ in range(requests):
            request()
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", arm, pid], check=True, capture_output=True)
        gc.enable()


def instructions(workload: str, requests: int) -> dict[str, float]:
    """Instructions per statement, per arm, counted in one process under callgrind: the arms share
    its memory layout and hash seed (which move counts between processes), and run in the order
    ORDER, so what grows as the process runs weighs on each arm alike."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind")
    totals = dict.fromkeys(ARMS, 0)
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={target}",
                sys.executable, __file__, "--child", workload, "--requests", str(requests),
            ],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        for name in sorted(os.listdir(tmp)):
            with open(os.path.join(tmp, name)) as f:
                text = f.read()
            trigger = re.search(r"^desc: Trigger: dump (\w+)", text, re.MULTILINE)
            total = re.search(r"^totals: (\d+)", text, re.MULTILINE)
            if trigger and total and trigger.group(1) in ARMS:
                totals[trigger.group(1)] += int(total.group(1))
    runs = {arm: ORDER.count(arm) for arm in ARMS}
    if not all(totals.values()):
        raise SystemExit(f"missing callgrind counts: {totals}")
    return {arm: totals[arm] / runs[arm] / requests / STATEMENTS[workload] for arm in ARMS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--workloads", default=",".join(STATEMENTS), help="comma-separated: orm,core,async")
    parser.add_argument("--child", choices=tuple(STATEMENTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.requests)
        return
    for workload in args.workloads.split(","):
        statements = STATEMENTS[workload]
        print(f"{workload}: {statements} statements per request")
        if args.instructions:
            counts = instructions(workload, min(args.requests, 40))
            for arm in ARMS:
                print(f"  {arm:>5}: {counts[arm]:>10.0f} instructions per statement")
            print(
                f"  call sites add {counts['on'] - counts['off']:.0f} instructions per statement "
                f"(on/off {counts['on'] / counts['off']:.3f}, on/bare {counts['on'] / counts['bare']:.3f})"
            )
            continue
        best = wall_clock(workload, args.requests, args.rounds)
        for arm in ARMS:
            print(f"  {arm:>5}: {best[arm]:>7.2f} µs per statement")
        print(
            f"  call sites add {best['on'] - best['off']:.2f} µs per statement (on/off "
            f"{best['on'] / best['off']:.3f}, on/bare {best['on'] / best['bare']:.3f}; goal: at most 1 µs)"
        )


if __name__ == "__main__":
    main()
