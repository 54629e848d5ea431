from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NoOpTracer

sqlalchemy = pytest.importorskip("sqlalchemy")

from otelperf.config import resolve_settings  # noqa: E402
from otelperf.instrumentation._base import InstrumentContext  # noqa: E402
from otelperf.instrumentation.sqlalchemy_pool import SQLAlchemyPoolInstrumentor  # noqa: E402


def _points(reader: InMemoryMetricReader, name: str) -> list[tuple[dict[str, object], float]]:
    data = reader.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    out += [(dict(p.attributes or {}), p.value) for p in metric.data.data_points]
    return out


def test_pool_use_is_reported_and_uninstrument_stops_it(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = SQLAlchemyPoolInstrumentor()
    ctx = InstrumentContext(NoOpTracer(), provider.get_meter("t"), resolve_settings(environ={}))
    instrumentor.instrument(ctx)
    instrumentor.instrument(ctx)  # idempotent
    engine = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        poolclass=sqlalchemy.pool.QueuePool,
        pool_size=3,
        max_overflow=2,
    )
    try:
        held = engine.connect()
        with engine.connect():
            counts = {
                p[0]["db.client.connection.state"]: p[1]
                for p in _points(reader, "db.client.connection.count")
            }
            assert counts == {"used": 2, "idle": 0}
        counts = {
            p[0]["db.client.connection.state"]: p[1] for p in _points(reader, "db.client.connection.count")
        }
        assert counts == {"used": 1, "idle": 1}
        [(attrs, most)] = _points(reader, "db.client.connection.max")
        assert most == 5 and attrs["db.client.connection.pool.name"] == "sqlite/1"
        held.close()

        instrumentor.uninstrument()
        assert not sqlalchemy.event.contains(sqlalchemy.pool.Pool, "connect", instrumentor._on_connect)
        assert _points(reader, "db.client.connection.count") == []
    finally:
        instrumentor.uninstrument()
        engine.dispose()
        provider.shutdown()
