"""The findings log line says how often a statement ran in a request and how often it was found."""

from __future__ import annotations

import logging

import pytest

from otelperf.detectors import _findings
from otelperf.detectors._api import Finding
from otelperf.detectors._findings import FindingsSink

STATEMENT = "SELECT * FROM items WHERE order_id = ?"


def n_plus_one(count: int, trace_id: str, duration_ms: float = 850.0) -> Finding:
    return Finding(
        detector="n_plus_one",
        severity="warning",
        route="GET /orders/{order_id}",
        fingerprint="f1",
        statement=STATEMENT,
        count=count,
        duration_ms=duration_ms,
        trace_id=trace_id,
        anchor_span_id="00f067aa0ba902b7",
        span_ids=(),
        hint="load the items with the order (one query with IN or a join)",
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(_findings.time, "monotonic", lambda: now[0])
    return now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otelperf.findings"]


def test_the_line_counts_repetitions_in_the_request_and_findings_apart(
    caplog: pytest.LogCaptureFixture, clock: list[float]
) -> None:
    caplog.set_level(logging.WARNING, logger="otelperf.findings")
    sink = FindingsSink(None)

    sink.record([n_plus_one(110, "t1")])
    assert lines(caplog) == [
        f"otelperf n_plus_one [warning] GET /orders/{{order_id}}: {STATEMENT} x110 in 1 request "
        "(finding seen 1 time so far, 850 ms in all; trace t1) - "
        "load the items with the order (one query with IN or a join)"
    ]

    # Two more requests with the same N+1 within the minute: counted, not logged.
    clock[0] += 20
    sink.record([n_plus_one(108, "t2", 800.0)])
    clock[0] += 20
    sink.record([n_plus_one(111, "t3", 810.0)])
    assert len(lines(caplog)) == 1

    clock[0] += 35  # 75 s after the first line
    sink.record([n_plus_one(95, "t4", 700.0)])
    assert lines(caplog)[1] == (
        f"otelperf n_plus_one [warning] GET /orders/{{order_id}}: {STATEMENT} x95 in 1 request "
        "(finding seen 3 times in the last 75 s, 4 times in all, 3160 ms in all; trace t4) - "
        "load the items with the order (one query with IN or a join)"
    )

    clock[0] += 600  # the next line, ten minutes on: one finding since the last line
    sink.record([n_plus_one(2, "t5", 10.0)])
    assert (
        "x2 in 1 request (finding seen 1 time in the last 10 min, 5 times in all, 3170 ms in all;"
        in (lines(caplog)[2])
    )
    [stats] = sink.ranked()
    assert (stats.occurrences, stats.last_count) == (5, 2)
