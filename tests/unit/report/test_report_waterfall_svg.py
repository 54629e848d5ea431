"""The waterfall as SVG (well-formed, one group per row, offending spans red, call sites, hints,
escaping) and in the HTML report's findings section."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.unit.report.test_report_page import Page
from tests.unit.report.traces import TRACE_ID, S, db, finding, n_plus_one_trace, trace

from otelperf.report.html.model import Finding, ReportData
from otelperf.report.html.page import render
from otelperf.report.html.waterfall_svg import OFFENDING, finding_waterfalls, waterfall_svg
from otelperf.report.waterfall import build

SVG = "{http://www.w3.org/2000/svg}"


def groups(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # raises on malformed XML
    assert root.tag == f"{SVG}svg"
    return [g for g in root.iter(f"{SVG}g") if "span" in (g.get("class") or "").split()]


def test_the_svg_is_well_formed_with_one_group_per_row_and_a_tooltip_each() -> None:
    w = build(n_plus_one_trace(repeats=8), fold_after=5)
    svg = waterfall_svg(w, title="trace x")
    rows = groups(svg)
    assert len(rows) == len(w.rows)
    for g in rows:
        title = g.find(f"{SVG}title")
        assert title is not None and title.text
    names = [g.find(f"{SVG}text").text for g in rows]  # type: ignore[union-attr]
    assert names[0] == "GET /orders"
    assert "SELECT shop \u00d7 3" in names  # the fold of the 6th to 8th lazy load


def test_offending_spans_are_red_with_their_call_site_and_the_hint_is_under_the_anchor() -> None:
    w = build(n_plus_one_trace(repeats=6))
    svg = waterfall_svg(w)
    rows = groups(svg)
    offending = [g for g in rows if "offending" in (g.get("class") or "").split()]
    assert len(offending) == 6
    for g in offending:
        bar = next(r for r in g.iter(f"{SVG}rect") if r.get("class") == "bar")
        assert bar.get("fill") == OFFENDING
        texts = " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
        assert "app/routes.py:42 list_orders()" in texts
        tip = g.find(f"{SVG}title").text or ""  # type: ignore[union-attr]
        assert "called from /srv/shop/app/routes.py:42 list_orders()" in tip
    others = [g for g in rows if g not in offending]
    assert all(
        next(r for r in g.iter(f"{SVG}rect") if r.get("class") == "bar").get("fill") != OFFENDING
        for g in others
    )
    hints = [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text") if t.get("class") == "hint"]
    assert len(hints) == 1 and "n_plus_one" in hints[0] and "selectinload()" in hints[0]


def test_bars_are_placed_on_the_timeline() -> None:
    t = trace([S("root", "GET /", 0, 100, kind=2), S("half", "half", 50, 100, "root")])
    rows = groups(waterfall_svg(build(t), width=1000))
    bars = [next(r for r in g.iter(f"{SVG}rect") if r.get("class") == "bar") for g in rows]
    root_x, root_w = float(bars[0].get("x", 0)), float(bars[0].get("width", 0))
    half_x, half_w = float(bars[1].get("x", 0)), float(bars[1].get("width", 0))
    assert abs(half_x - (root_x + root_w / 2)) < 0.5
    assert abs(half_w - root_w / 2) < 0.5


def test_names_and_statements_are_escaped() -> None:
    evil = "</text><script>alert(1)</script>&"
    t = trace([S("root", evil, 0, 10, kind=2), db("q", 1, 2, "root", statement=evil)])
    svg = waterfall_svg(build(t), title=evil)
    assert "<script>" not in svg
    root = ET.fromstring(svg)
    assert any((e.text or "").startswith("</text><script>") for e in root.iter(f"{SVG}text"))


def _finding(fingerprint: str = "fp-n_plus_one", trace_ids: tuple[str, ...] = (TRACE_ID,)) -> Finding:
    return Finding(
        "shop", "n_plus_one", "critical", "GET /orders", fingerprint, "SELECT ...", 3, 90.0, trace_ids
    )


def test_the_report_draws_the_example_trace_of_each_finding() -> None:
    data = ReportData("shop", 0.0, 60.0, "http://prom", "http://jaeger:16686")
    data.findings = [_finding()]
    data.traces = {TRACE_ID: n_plus_one_trace(repeats=6)}
    html = render(data)
    page = Page(html)
    svgs = [a for tag, a in page.tags if tag == "svg" and a.get("class") == "waterfall"]
    assert len(svgs) == 1
    figures = [a for tag, a in page.tags if tag == "figure"]
    assert figures == [{"class": "waterfall", "data-trace-id": TRACE_ID}]
    start = html.index('<svg class="waterfall"')
    groups(html[start : html.index("</svg>", start) + len("</svg>")])  # well-formed inside the page
    assert "n_plus_one: GET /orders \u2014 SELECT ..." in page.visible
    assert all(tag not in ("script", "img", "link") for tag, _ in page.tags)


def test_no_waterfall_without_the_trace_or_for_another_finding_and_at_most_the_page_budget() -> None:
    t = n_plus_one_trace(repeats=6)
    assert finding_waterfalls([_finding(trace_ids=())], {TRACE_ID: t}, [5]) == ""
    assert finding_waterfalls([_finding(fingerprint="other")], {TRACE_ID: t}, [5]) == ""
    budget = [1]
    two = finding_waterfalls([_finding(), _finding()], {TRACE_ID: t}, budget)
    assert two.count("<svg") == 1 and budget == [0]


def test_the_slow_query_of_a_trace_with_two_findings_is_the_one_highlighted() -> None:
    t = trace(
        [
            S("root", "GET /", 0, 100, kind=2),
            db("slow", 1, 90, "root", events=[finding("slow_query", 1)]),
            *[db(f"r{i}", 90 + i, 90.5 + i, "root", statement="SELECT r") for i in range(6)],
        ]
    )
    slow = Finding("shop", "slow_query", "critical", "GET /", "fp-slow_query", "SELECT", 1, 89.0, (TRACE_ID,))
    html = finding_waterfalls([slow], {TRACE_ID: t}, [5])
    start = html.index("<svg")
    rows = groups(html[start : html.index("</svg>") + 6])
    offending = [g for g in rows if "offending" in (g.get("class") or "")]
    assert len(offending) == 1
