"""A baseline's N+1 / slow-query fingerprints: recorded, round-tripped, and new ones fail compare
(the whole command against the real stack: tests/e2e/test_e2e_lifecycle.py)."""

from __future__ import annotations

from typing import Any

import pytest

from otelperf.backends import Sample
from otelperf.baseline import collect
from otelperf.baseline.model import Baseline, BaselineError, format_new_findings, new_findings

A = {"detector": "n_plus_one", "route": "GET /orders", "fingerprint": "a", "statement": "SELECT items"}
B = {"detector": "slow_query", "route": "GET /orders", "fingerprint": "b", "statement": "SELECT orders"}


def test_new_findings_by_detector_route_and_fingerprint() -> None:
    moved = {**A, "route": "GET /orders/{order_id}"}  # the same loop on another route is new there
    assert new_findings([A], [A]) == []
    assert new_findings([A], [A, B, moved]) == [B, moved]
    assert new_findings([A, B], [A]) == []  # a fixed finding is no failure
    text = format_new_findings([B])
    assert text.splitlines() == [
        "NEW slow_query on GET /orders: SELECT orders (fingerprint b)",
        "baseline: 1 new N+1/slow-query finding(s) (mark known ones expected: docs/detectors.md)",
    ]
    assert format_new_findings([]) == "baseline: no new N+1 or slow-query finding"


def test_findings_round_trip_and_an_older_file_has_none() -> None:
    baseline = Baseline({"GET /orders": {"p95_ms": 10.0}}, findings=[B, A])
    again = Baseline.from_json(baseline.to_json())
    assert again.findings == [A, B]  # sorted: a stable file
    older = Baseline.from_json(Baseline({"GET /orders": {"p95_ms": 10.0}}).to_json())
    assert older.findings is None
    with pytest.raises(BaselineError, match="'findings' must be a list"):
        Baseline.from_json('{"format": "otelperf-baseline/1", "routes": {}, "findings": {"a": 1}}')


def test_gated_findings_reads_n_plus_one_and_slow_query_without_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def fake_query(backends: Any, promql: str, at: float) -> list[Sample]:
        asked.append(promql)
        return [
            Sample({**A, "severity": "warning"}, 3.0, 0.0),
            Sample({**B}, 0.0, 0.0),  # did not grow in the window
        ]

    monkeypatch.setattr(collect, "query", fake_query)
    found = collect.gated_findings(collect.Backends("http://p", "http://j"), "shop", 100.0, 160.0)
    assert found == [A]
    (promql,) = asked
    assert 'job="shop",detector=~"n_plus_one|slow_query",expected!="true"' in promql
    assert "[60s]" in promql
