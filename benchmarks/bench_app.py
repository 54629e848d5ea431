"""The FastAPI app benchmarks/overhead.py loads in every arm (bare, plain auto-instrumentation, otelperf).

Routes, each doing a fixed amount of work so the arms can be compared:

- ``GET /json``        trivial JSON, no I/O
- ``GET /one-query``   one SQLAlchemy query
- ``GET /n-plus-one``  1 + 10 queries (the N+1 pattern: a list, then one query per row)
- ``GET /cached``      one in-process cache read (a hit in a ``cachetools.LRUCache``)
- ``GET /sync``        two SQLAlchemy statements (an author, then their books' titles) in a plain ``def``
                       endpoint: the way most SQLAlchemy users write a route (issue 13's sync route)

The database is a SQLite file (``BENCH_DB``) used through a *sync* engine from ``def`` endpoints,
which FastAPI runs in its thread pool with the request's context copied: that is what lets the
contrib SQLAlchemy instrumentor (plain arm) parent its DB spans under the request's SERVER span.

The app is identical in every arm. It imports otelperf in two cases only, both for the otelperf arm
(``BENCH_ARM=otelperf``): ``BENCH_OTELPERF_INIT=1`` calls ``otelperf.init()`` at import (the
``--otelperf-mode init`` path, for when ``otelperf run`` is not available), and the cache is wrapped
with ``otelperf.instrument_cache``. Plain OpenTelemetry has no in-process cache instrumentation, so
on ``/cached`` the otelperf arm does strictly more work (one more span per request) than the plain
arm: the comparison is fair for the other routes and tilted *against* otelperf on that one.

    python benchmarks/bench_app.py --seed PATH     # create and fill the SQLite file (run once, untraced)
"""

from __future__ import annotations

import os
import sys
from typing import Any

import cachetools
from fastapi import FastAPI
from sqlalchemy import Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

ARM = os.environ.get("BENCH_ARM", "bare")
DB_PATH = os.environ.get("BENCH_DB", os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.db"))
N_PLUS_ONE_ROWS = 10
AUTHORS = 50

if ARM == "otelperf" and os.environ.get("BENCH_OTELPERF_INIT") == "1":
    import otelperf

    otelperf.init()


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author_id: Mapped[int] = mapped_column(Integer, index=True)
    title: Mapped[str] = mapped_column(String(200))


def make_engine(path: str) -> Any:
    # check_same_thread=False: the pool hands connections to FastAPI's worker threads.
    return create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False}, pool_size=8)


def seed(path: str) -> None:
    engine = make_engine(path)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for a in range(1, AUTHORS + 1):
            session.add(Author(id=a, name=f"author {a}"))
            for b in range(3):
                session.add(Book(author_id=a, title=f"book {a}.{b}"))
        session.commit()
    engine.dispose()


def _make_cache() -> Any:
    cache: Any = cachetools.LRUCache(maxsize=1024)
    for i in range(100):
        cache[f"price:{i}"] = {"sku": i, "price": i * 1.5}
    if ARM != "otelperf":
        return cache
    try:
        import otelperf

        return otelperf.instrument_cache(cache, name="prices")
    except ImportError as exc:  # otelperf's cache instrumentation not there (yet): same work, no span
        print(f"bench_app: otelperf arm without cache instrumentation: {exc!r}", file=sys.stderr, flush=True)
        return cache


def _diagnostics() -> None:
    """Bench-only knobs for benchmarks/sync_wall.py, off unless their variable is set:
    ``BENCH_SWITCH_INTERVAL`` (seconds) sets ``sys.setswitchinterval`` (how long a thread waiting for
    the GIL lets the holder run before asking it to drop it); ``BENCH_THREADS_FILE`` makes SIGUSR2
    write ``{native thread id: thread name}`` there, so per-thread kernel counters (CPU, context
    switches, run-queue wait) can be put under the names of uvicorn's, AnyIO's and otelperf's threads,
    with the garbage collector's running totals (``gc.callbacks``: collections and seconds per
    generation) under ``"gc"``; ``BENCH_DETECTOR_WAKE`` (seconds) changes how often otelperf's
    detector thread wakes (a module global it reads on every wait), to see what holding finished
    requests' spans for that long costs; ``BENCH_GC_OFF=1`` switches the cyclic garbage collector off."""
    if os.environ.get("BENCH_GC_OFF") == "1":  # how much of an arm's cost is the cyclic collector's
        import gc

        gc.disable()
    interval = os.environ.get("BENCH_SWITCH_INTERVAL")
    if interval:
        sys.setswitchinterval(float(interval))
    wake = os.environ.get("BENCH_DETECTOR_WAKE")
    if wake and ARM == "otelperf":
        import importlib

        for where in ("otelperf.pipeline.detector_processor", "otelperf.detectors._pipeline"):  # new, old
            try:
                setattr(importlib.import_module(where), "WAKE_INTERVAL_S", float(wake))  # noqa: B010
                break
            except ImportError:
                continue
    path = os.environ.get("BENCH_THREADS_FILE")
    if path:
        import gc
        import json
        import signal
        import threading
        import time

        gc_totals: dict[str, float] = {}
        started: list[float] = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
                return
            gen = f"gen{info['generation']}"
            gc_totals[f"{gen}_n"] = gc_totals.get(f"{gen}_n", 0) + 1
            gc_totals[f"{gen}_s"] = gc_totals.get(f"{gen}_s", 0.0) + time.perf_counter() - started[0]

        gc.callbacks.append(on_gc)

        def dump(*_: Any) -> None:
            names: dict[str, Any] = {str(t.native_id): t.name for t in threading.enumerate()}
            names["gc"] = dict(gc_totals)
            with open(path, "w") as out:
                json.dump(names, out)

        signal.signal(signal.SIGUSR2, dump)


_diagnostics()
engine = make_engine(DB_PATH)
cache = _make_cache()
app = FastAPI()


@app.get("/json")
async def json_route() -> dict[str, Any]:
    return {"ok": True, "items": [1, 2, 3]}


@app.get("/one-query")
def one_query() -> dict[str, Any]:
    with Session(engine) as session:
        author = session.execute(select(Author).where(Author.id == 7)).scalar_one()
        return {"id": author.id, "name": author.name}


@app.get("/n-plus-one")
def n_plus_one() -> dict[str, Any]:
    with Session(engine) as session:
        authors = session.execute(select(Author).order_by(Author.id).limit(N_PLUS_ONE_ROWS)).scalars().all()
        out = []
        for author in authors:  # deliberately one query per author
            books = session.execute(select(Book.title).where(Book.author_id == author.id)).scalars().all()
            out.append({"author": author.name, "books": len(books)})
        return {"authors": out}


@app.get("/sync")
def sync_route() -> dict[str, Any]:
    # Starlette runs a `def` endpoint in its thread pool (anyio worker threads), so each request is
    # two hand-offs between the event loop and a worker thread around two statements on a pooled
    # connection: the shape whose wall-clock cost issue 13 asks about.
    with Session(engine) as session:
        author = session.execute(select(Author).where(Author.id == 7)).scalar_one()
        titles = session.execute(select(Book.title).where(Book.author_id == author.id)).scalars().all()
        return {"id": author.id, "name": author.name, "titles": list(titles)}


@app.get("/cached")
async def cached() -> dict[str, Any]:
    return {"value": cache.get("price:42")}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--seed":
        seed(sys.argv[2])
        print(f"seeded {sys.argv[2]}")
    else:
        print(__doc__)
        sys.exit(2)
