"""The HTML page from fixed data: sections, verdicts, budget lines, Jaeger links, escaping, offline."""

from __future__ import annotations

from html.parser import HTMLParser

from otelperf.report.html.model import BaselineRoute, Budget, DbOperation, Finding, ReportData, RouteReport
from otelperf.report.html.page import render

T0 = 1_800_000_000.0
JAEGER = "http://jaeger.example:16686"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
EVIL = "SELECT '</code><script>alert(1)</script>' FROM t WHERE a = ?"


class Page(HTMLParser):
    """What a reader of the page gets: tags, links, section ids and headings, visible text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._in: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            while self._in.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in and self._in[-1] in ("h2", "h3"):
            self.headings.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    @property
    def visible(self) -> str:
        return " ".join(self.text)


def series(values: list[float | None]) -> list[tuple[float, float | None]]:
    return [(T0 + 10 * i, v) for i, v in enumerate(values)]


def data(**overrides: object) -> ReportData:
    slow = RouteReport(
        "GET /orders",
        requests=600,
        errors=12,
        seconds=60,
        p50_ms=80,
        p95_ms=720,
        p99_ms=900,
        latency={"p50": series([70, 80, 90]), "p95": series([400, 720, 800]), "p99": series([500, 900, 950])},
        throughput=series([9, 10, 11]),
        error_rate=series([0.0, 0.02, 0.04]),
        budget=Budget(p95_ms=500, p99_ms=1000, error_rate=0.01),
        slowest_trace_id=TRACE,
    )
    fast = RouteReport(
        "GET /products/{product_id}",
        requests=300,
        errors=0,
        seconds=60,
        p50_ms=5,
        p95_ms=12,
        p99_ms=20,
        latency={"p50": series([5, 5, 5]), "p95": series([12, 11, 12]), "p99": series([20, 19, 21])},
        throughput=series([5, 5, 5]),
        error_rate=series([0.0, 0.0, 0.0]),
        budget=Budget(p95_ms=200, error_rate=0.01),
    )
    findings = [
        Finding("shop", "n_plus_one", "warning", "GET /orders", "fp1", EVIL, 40, 1200.0, (TRACE,)),
        Finding("shop", "latency_budget", "warning", "GET /orders", "fp2", "GET /orders", 30, 900.0, ()),
    ]
    report = ReportData(
        service="shop",
        start=T0,
        end=T0 + 60,
        prometheus="http://prom.example:9090",
        jaeger=JAEGER,
        routes=[slow, fast],
        findings=findings,
        db_operations=[DbOperation("SELECT order_items", "postgresql", 400, 800.0)],
        baseline={"GET /orders": BaselineRoute(p50_ms=80, p95_ms=480, p99_ms=600, rps=10, error_rate=0.0)},
        baseline_source="baseline.json",
    )
    for key, value in overrides.items():
        setattr(report, key, value)
    return report


def test_sections_in_order() -> None:
    page = Page(render(data()))
    ids = [a["id"] for a in page.all("section")]
    assert ids == ["summary", "latency", "traffic", "client", "database", "findings", "apptime", "baseline"]


def test_summary_gives_a_verdict_per_route_against_its_budget() -> None:
    page = Page(render(data()))
    text = page.visible
    assert "1 of 2 routes over budget." in text
    assert "over budget" in text and "within budget" in text
    assert "p95 720 ms > 500 ms" in text and "errors 2.00% > 1.00%" in text
    assert "Throughput of all routes: 15.00 req/s" in text


def test_each_route_has_a_latency_chart_with_its_budget_line() -> None:
    html = render(data())
    page = Page(html)
    charts = [a for a in page.all("div") if (a.get("id") or "").startswith("route-")]
    assert len(charts) == 2
    thresholds = page.all("line", **{"class": "threshold"})
    assert len(thresholds) == 3  # /orders: p95 and p99 budgets; /products: p95 only
    assert len(page.all("circle", **{"class": "breach"})) == 2  # 720 and 800 ms over the 500 ms budget
    assert "GET /orders: latency percentiles" in page.visible
    assert len(page.all("svg")) == 2 + 2  # two routes, throughput, error rate; no client-side data


def test_links_point_at_the_traces_in_jaeger() -> None:
    page = Page(render(data()))
    links = [a["href"] for a in page.all("a")]
    assert links and all(href == f"{JAEGER}/trace/{TRACE}" for href in links)
    # the summary's slow trace, the N+1 finding, the fingerprint table
    assert len(links) == 3


def test_untrusted_text_is_escaped() -> None:
    html = render(data())
    page = Page(html)
    assert page.all("script") == []
    assert EVIL in page.visible  # shown as text, whole


def test_readable_offline_no_external_resources() -> None:
    page = Page(render(data()))
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object")
        assert "src" not in attrs
    assert page.all("style")


def test_findings_grouped_by_detector_and_database_tables() -> None:
    page = Page(render(data()))
    assert "n_plus_one: 40 findings, 1,200 ms" in page.headings
    assert "latency_budget: 30 findings, 900 ms" in page.headings
    text = page.visible
    assert "SELECT order_items" in text and "fp1" in text


def test_a_finding_shows_its_call_site_and_whether_it_is_expected() -> None:
    report = data()
    marked = [
        Finding(
            "shop", "n_plus_one", "warning", "GET /a", "fp3", "SELECT a", 5, 50.0, (),
            expected=True, call_site="app/routes.py:44 in list_authors()",
        ),
        Finding(
            "shop", "n_plus_one", "warning", "GET /b", "fp4", "SELECT b", 5, 40.0, (), call_site="<x>.py:1"
        ),
    ]  # fmt: skip
    report.findings = [*report.findings, *marked]
    text = " ".join(Page(render(report)).visible.split())
    assert "at app/routes.py:44 in list_authors()" in text
    assert "(expected: no alert)" in text and text.count("(expected: no alert)") == 1
    assert "at <x>.py:1" in text  # escaped in the HTML, read back as text


def test_baseline_comparison_shows_change() -> None:
    page = Page(render(data()))
    text = page.visible
    assert "+50.0%" in text  # p95 480 -> 720 ms
    assert "REGRESSED" in text  # as `otelperf baseline compare` would judge it
    assert "baseline.json" in text


def test_empty_window_says_so_per_section() -> None:
    page = Page(render(data(routes=[], findings=[], db_operations=[], baseline=None)))
    assert page.all("svg") == []
    text = page.visible
    assert "No HTTP requests were recorded in this window" in text
    assert "No request latencies in this window." in text
    assert "No findings in this window" in text
    assert "No database spans in this window" in text
    assert "No baseline given" in text


def test_route_without_points_has_a_note_not_an_empty_chart() -> None:
    route = RouteReport("GET /idle", requests=1, errors=0, seconds=60, latency={"p95": series([None, None])})
    page = Page(render(data(routes=[route], baseline=None)))
    assert "GET /idle: no latency data in this window." in page.visible
    assert not [a for a in page.all("div") if (a.get("id") or "").startswith("route-")]


def test_notes_are_shown() -> None:
    page = Page(render(data(notes=["Jaeger: cannot read http://x; no links"])))
    assert "Jaeger: cannot read http://x; no links" in page.visible
