"""Flame graphs of over-budget routes in the HTML report, from the profiler's folded stacks in Jaeger.

Jaeger is a loopback fake answering api_v3 searches with OTLP JSON; the folded stacks in it come
from a real request profiled by otelperf (the latency-budget finding's span event).
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.trace import SpanKind
from tests.unit.backends.fake_backend import closed_port_url, fake_backend
from tests.unit.profiler.test_attribution import get_all, make_app
from tests.unit.report.test_report_page import Page, data

from otelperf import _names
from otelperf.backends import Jaeger, Prometheus
from otelperf.report.html.collect import Collector
from otelperf.report.html.flame import RouteFlame, flame_svg, parse_folded, route_flames
from otelperf.report.html.model import Finding
from otelperf.report.html.page import render
from otelperf.report.html.prom import Window
from otelperf.testing import capture, stop_capture

T0 = 1_800_000_000


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    return {"doubleValue": v}


def _attrs(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in mapping.items()]


def jaeger_answer(route: str, events: list[dict[str, Any]], service: str = "shop") -> dict[str, Any]:
    """An api_v3 search answer: one trace per event list item, its SERVER span carrying that event."""
    spans = []
    for i, event in enumerate(events):
        spans.append(
            {
                "traceId": f"{i + 1:032x}",
                "spanId": f"{i + 1:016x}",
                "name": route,
                "kind": 2,
                "startTimeUnixNano": str(T0 * 10**9),
                "endTimeUnixNano": str(T0 * 10**9 + 300_000_000),
                "events": [
                    {"timeUnixNano": str(T0 * 10**9), "name": "otelperf.finding", "attributes": _attrs(event)}
                ],
            }
        )
    resource = {"attributes": _attrs({"service.name": service})}
    return {
        "result": {
            "resourceSpans": [
                {"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}
            ]
        }
    }


def budget_event(folded: str) -> dict[str, Any]:
    return {
        "otelperf.finding.span_ids": ("00f067aa0ba902b7",),  # a sequence, as other attributes may be
        _names.FINDING_DETECTOR: "latency_budget",
        _names.FINDING_APP_PROFILE: "app ...",
        _names.FINDING_APP_FOLDED: folded,
    }


STACKS = (
    "fastapi;list_orders (routes.py:40);compute_discount (pricing.py:88) 70.0\n"
    "fastapi;list_orders (routes.py:40);pydantic 30.0"
)


def test_folded_stacks_of_a_route_are_added_up_over_its_over_budget_requests() -> None:
    events = [
        budget_event(STACKS),
        budget_event(
            "fastapi;list_orders (routes.py:40);compute_discount (pricing.py:88) 10.0\nnot a line\n;; x"
        ),
        {
            _names.FINDING_DETECTOR: "n_plus_one",
            _names.FINDING_APP_FOLDED: "ignored 99",
        },  # not a budget finding
        {_names.FINDING_DETECTOR: "latency_budget"},  # profiler off in that process: no stacks
    ]
    with fake_backend({"/api/v3/traces": (200, jaeger_answer("GET /orders", events))}) as backend:
        [flame] = route_flames(Jaeger(backend.url), [("shop", "GET /orders")], T0 - 60, T0 + 60)
        [(path, params)] = backend.asked
    assert path == "/api/v3/traces"
    assert params["query.operation_name"] == "GET /orders" and params["query.service_name"] == "shop"
    assert flame.route == "GET /orders" and flame.requests == 2
    assert flame.stacks == {
        "fastapi;list_orders (routes.py:40);compute_discount (pricing.py:88)": 80.0,
        "fastapi;list_orders (routes.py:40);pydantic": 30.0,
    }
    assert parse_folded("a;b 1.5\nbad\nc nan\nd -1\ne 2") == {"a;b": 1.5, "e": 2.0}


def test_the_svg_draws_each_frame_as_wide_as_its_share() -> None:
    svg = flame_svg(parse_folded(STACKS), title="GET /orders", width=1000)
    page = Page(svg)
    rects = {a.get("x"): a for a in page.all("rect")}
    widths = sorted(float(a["width"] or 0) for a in page.all("rect"))
    # all, fastapi, list_orders: 1000 px; compute_discount 700 px; pydantic 300 px
    assert widths == [300.0, 700.0, 1000.0, 1000.0, 1000.0]
    assert rects
    titles = [t for t in page.text if " ms (" in t]
    assert "compute_discount (pricing.py:88): 70.0 ms (70.0%)" in titles
    assert "pydantic: 30.0 ms (30.0%)" in titles
    assert len(page.all("g", **{"class": "frame app"})) == 2  # list_orders and compute_discount


def test_labels_from_the_backend_are_escaped() -> None:
    svg = flame_svg({"<script>alert(1)</script> (x.py:1)": 5.0}, title="GET /<b>")
    page = Page(svg)
    assert page.all("script") == [] and page.all("b") == []
    assert any("<script>" in t for t in page.text)


def test_the_report_shows_a_flame_graph_per_over_budget_route() -> None:
    flames = [RouteFlame("GET /orders", parse_folded(STACKS), requests=2)]
    page = Page(render(data(flames=flames)))
    [section] = [a for a in page.all("section") if a.get("id") == "apptime"]
    assert section
    assert len(page.all("svg", **{"class": "flame"})) == 1
    assert "GET /orders: 100 ms sampled in 2 over-budget requests" in page.visible
    empty = Page(render(data()))
    assert "No profiled over-budget requests in this window" in empty.visible


def test_the_collector_reads_the_flames_of_routes_with_budget_findings() -> None:
    findings = [
        Finding("shop", "latency_budget", "warning", "GET /orders", "fp", "GET /orders", 2, 600),
        Finding("shop", "n_plus_one", "warning", "GET /other", "fp2", "SELECT", 1, 60),
    ]
    window = Window.of(T0 - 60, T0 + 60)
    with fake_backend(
        {"/api/v3/traces": (200, jaeger_answer("GET /orders", [budget_event(STACKS)]))}
    ) as backend:
        collector = Collector(Prometheus(closed_port_url()), window, "shop", backend.url)
        notes: list[str] = []
        [flame] = collector.flames(findings, notes)
        assert [params["query.operation_name"] for _, params in backend.asked] == ["GET /orders"]
    assert flame.requests == 1 and notes == []
    notes = []
    assert (
        Collector(Prometheus(closed_port_url()), window, "shop", closed_port_url()).flames(findings, notes)
        == []
    )
    assert notes and notes[0].startswith("Jaeger: ") and "no flame graphs" in notes[0]


def test_from_a_profiled_request_to_its_flame_graph() -> None:
    cap = capture(budgets={"*": 30}, profiler=True, profiler_hz=200)
    try:
        asyncio.run(get_all(make_app(), "/sync"))
        [server] = [s for s in cap.spans if s.kind is SpanKind.SERVER]
        [event] = [e for e in server.events if e.name == _names.FINDING_EVENT]
        event_attributes = dict(event.attributes or {})
    finally:
        stop_capture(cap)
    answer = jaeger_answer("GET /sync", [event_attributes])
    with fake_backend({"/api/v3/traces": (200, answer)}) as backend:
        [flame] = route_flames(Jaeger(backend.url), [("shop", "GET /sync")], T0 - 60, T0 + 60)
    page = Page(render(data(flames=[flame])))
    boxes = [t for t in page.text if t.startswith("burn_in_sync_handler (test_attribution.py:")]
    assert boxes, page.visible
