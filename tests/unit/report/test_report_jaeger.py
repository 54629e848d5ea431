"""The report's example traces: one Jaeger search per route with findings, and the spans of each
finding's first example kept for its waterfall (no request more)."""

from __future__ import annotations

from tests.unit.backends.fake_backend import fake_backend
from tests.unit.report.traces import document, n_plus_one_spans

from otelperf.backends import Jaeger
from otelperf.backends.jaeger import Trace
from otelperf.report.html.jaeger import finding_traces
from otelperf.report.waterfall import build

FIRST, SECOND = "1" * 32, "2" * 32


def test_the_first_example_of_each_finding_keeps_its_spans() -> None:
    doc = document(n_plus_one_spans(6), FIRST)
    doc["result"]["resourceSpans"] += document(n_plus_one_spans(7), SECOND)["result"]["resourceSpans"]
    with fake_backend({"/api/v3/traces": (200, doc)}) as jaeger:
        traces: dict[str, Trace] = {}
        examples = finding_traces(Jaeger(jaeger.url), [("shop", "GET /orders")], 0.0, 60.0, traces)
        assert [params.get("query.operation_name") for _, params in jaeger.asked] == ["GET /orders"]
    assert examples[("shop", "n_plus_one", "fp-n_plus_one")] == [FIRST, SECOND]
    assert examples[("shop", "n_plus_one", "GET /orders")] == [FIRST, SECOND]
    assert list(traces) == [FIRST]  # only the first example is drawn
    waterfall = build(traces[FIRST])
    assert waterfall.span_count == len(n_plus_one_spans(6))
    assert len(waterfall.offending_rows) == 6


def test_without_a_traces_dict_nothing_is_kept() -> None:
    with fake_backend({"/api/v3/traces": (200, document(n_plus_one_spans(6), FIRST))}) as jaeger:
        examples = finding_traces(Jaeger(jaeger.url), [("shop", "GET /orders")], 0.0, 60.0)
    assert examples[("shop", "n_plus_one", "fp-n_plus_one")] == [FIRST]
