"""SQLAlchemy connection-pool use as OTel semconv gauges, for the pool-saturation alert.

``db.client.connection.count{db.client.connection.state=used|idle}`` and
``db.client.connection.max`` per pool (``db.client.connection.pool.name`` = ``<dialect>/<n>``, n
counting pools in creation order, so a restarted app gets the same names). Pools are found through
the class-level pool ``connect`` event, which fires only when a new DBAPI connection is opened:
nothing runs per checkout. A pool that opened all its connections before ``instrument()`` shows up
at its next new connection. Pools that do not pool (NullPool, StaticPool) report nothing.

Separate from ``sqlalchemy.py`` (statement spans) so the two can change independently; enabled with
it through the ``sqlalchemy_pool`` instrumentation name.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from otelperf.instrumentation._base import InstrumentContext, Instrumentor

__all__ = ["INSTRUMENTOR", "SQLAlchemyPoolInstrumentor"]

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"


class SQLAlchemyPoolInstrumentor(Instrumentor):
    name = "sqlalchemy_pool"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._counts: dict[str, int] = {}
        self._listening = False

    def _on_connect(self, dbapi_connection: Any, record: Any) -> None:
        # The record keeps its pool in a name-mangled attribute; no public accessor exists.
        pool = getattr(record, "_ConnectionRecord__pool", None)
        if pool is None or not hasattr(pool, "checkedout"):
            return
        with self._lock:
            if pool in self._pools:
                return
            dialect = getattr(getattr(pool, "_dialect", None), "name", None) or "db"
            self._counts[dialect] = self._counts.get(dialect, 0) + 1
            self._pools[pool] = f"{dialect}/{self._counts[dialect]}"

    def _snapshot(self) -> list[tuple[str, int, int, int | None]]:
        with self._lock:
            pools = list(self._pools.items())
        out = []
        for pool, name in pools:
            try:
                used, idle = int(pool.checkedout()), int(pool.checkedin())
                overflow = int(getattr(pool, "_max_overflow", 0))
                size = int(pool.size())
            except Exception:  # a pool mid-dispose: skip it this round
                continue
            out.append((name, used, idle, None if overflow < 0 else size + overflow))
        return out

    def _observe_count(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, used, idle, _ in self._snapshot():
            yield Observation(used, {POOL_NAME: name, STATE: "used"})
            yield Observation(idle, {POOL_NAME: name, STATE: "idle"})

    def _observe_max(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, _, _, most in self._snapshot():
            if most is not None:
                yield Observation(most, {POOL_NAME: name})

    def instrument(self, ctx: InstrumentContext) -> None:
        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        with self._lock:
            if self._listening:
                return
            self._listening = True
        event.listen(Pool, "connect", self._on_connect)
        ctx.meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._observe_count],
            unit="{connection}",
            description="Connections of the pool that are in use or idle.",
        )
        ctx.meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[self._observe_max],
            unit="{connection}",
            description="The most connections the pool may open (size + max overflow).",
        )

    def uninstrument(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        with self._lock:
            if not self._listening:
                return
            self._listening = False
            self._pools.clear()
        if event.contains(Pool, "connect", self._on_connect):
            event.remove(Pool, "connect", self._on_connect)


INSTRUMENTOR = SQLAlchemyPoolInstrumentor()
