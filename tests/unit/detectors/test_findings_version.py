"""The findings metrics carry service.version (for NEW/KNOWN/REGRESSED) and the statements counter."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from otelperf import _names
from otelperf.testing import capture, stop_capture


@pytest.mark.parametrize(
    ("settings", "version"),
    [
        ({"service_version": "2.0.1"}, "2.0.1"),
        ({"resource_attributes": "service.version=2.0.2"}, "2.0.2"),
        ({}, None),
    ],
)
def test_findings_points_carry_the_version(
    tmp_path: Path, settings: dict[str, str], version: str | None
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER)"))
    cap = capture(detectors="n_plus_one", n_plus_one_min_ms=0, budgets_file="none", **settings)
    try:
        tracer = cap.runtime.tracer
        assert tracer is not None
        with tracer.start_as_current_span("GET /orders"), engine.connect() as conn:
            for order_id in range(7):
                conn.execute(text("SELECT id FROM items WHERE order_id = :o"), {"o": order_id})
        cap.flush()
        (found,) = cap.metric_points(_names.METRIC_FINDINGS)
        (statements,) = cap.metric_points(_names.METRIC_FINDINGS_STATEMENTS)
    finally:
        stop_capture(cap)
    assert found.attributes.get(_names.SERVICE_VERSION) == version
    assert found.value == 1
    assert statements.value == 7  # the N+1's repeats in that one request
    assert dict(statements.attributes) == dict(found.attributes)
