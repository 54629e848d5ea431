"""``otelperf report --html`` against the real Prometheus and Jaeger, after real traffic to the shop.

The shop runs under ``otelperf run`` (its own service name) for about 20 s of steady traffic, so the
charts have points over time; the N+1 list makes findings (``OTELPERF_N_PLUS_ONE_MIN_MS=0``). The
report is made by the real command and read back with html.parser, like a reader would.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from tests.e2e._backend import (
    JAEGER,
    PROMETHEUS,
    StackUrls,
    poll,
    prometheus_result,
    wait_spans_stored,
)
from tests.e2e._shop import free_port, run_otelperf, shop_env, start_shop

from otelperf.backends import Jaeger

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVICE = f"shop-e2e-report-{uuid.uuid4().hex[:6]}"
LOAD_SECONDS = 20.0
ROUTES = ("GET /orders", "GET /orders/{order_id}", "GET /products/{product_id}/price")


@dataclass(frozen=True)
class ReportRun:
    sent: Counter[str]
    started: float
    finished: float


@pytest.fixture(scope="module")
def report_run(stack: StackUrls, shop_database: tuple[str, str], redis_url: str) -> ReportRun:
    _, db_url = shop_database
    env = shop_env(
        postgres_url=db_url,
        redis_url=redis_url,
        cache_prefix=f"e2e-report-{uuid.uuid4().hex[:8]}:",
        OTELPERF_N_PLUS_ONE_MIN_MS="0",
    )
    started = time.time()
    sent: Counter[str] = Counter()
    with start_shop(service=SERVICE, env=env) as shop:
        plan = [
            ("GET /orders", "/orders", {"limit": 6}),
            ("GET /orders/{order_id}", "/orders/3", {}),
            ("GET /products/{product_id}/price", "/products/5/price", {}),
        ]
        deadline = time.monotonic() + LOAD_SECONDS
        with httpx.Client(base_url=shop.url, timeout=10.0) as client:
            while time.monotonic() < deadline:
                for route, path, params in plan:
                    response = client.get(path, params=params)
                    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
                    sent[route] += 1
                time.sleep(0.1)
    assert shop.returncode == 0, f"shop exited with {shop.returncode}:\n{shop.output}"
    wait_spans_stored()

    def counted() -> dict[str, float]:
        query = f'sum by (http_route) (http_server_request_duration_seconds_count{{job="{SERVICE}"}})'
        rows = prometheus_result(query)
        return {r.labels["http_route"]: r.value for r in rows}

    poll(  # the exit flush reached Prometheus: every request is counted
        "the run's request counts in Prometheus",
        counted,
        lambda c: all(c.get(route.split(" ", 1)[1], 0) >= n for route, n in sent.items()),
        30,
    )
    poll(
        "the run's findings in Prometheus",
        lambda: prometheus_result(f'otelperf_findings_total{{job="{SERVICE}"}}'),
        bool,
        30,
    )
    return ReportRun(sent, started, time.time())


def html_report(out: Path, run: ReportRun) -> list[str]:
    """``otelperf report --html`` of this run's service, its window padded by 5 s on each side."""
    window = ["--start", f"{run.started - 5:.0f}", "--end", f"{run.finished + 5:.0f}"]
    return ["report", "--html", str(out), "--service", SERVICE, *window]


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.section = ""
        self.tags: list[tuple[str, str, dict[str, str | None]]] = []  # (section id, tag, attrs)
        self.text: dict[str, list[str]] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id") or ""
        self.tags.append((self.section, tag, a))

    def handle_data(self, data: str) -> None:
        self.text.setdefault(self.section, []).append(data)

    def visible(self, section: str) -> str:
        return " ".join(self.text.get(section, []))

    def all(self, section: str, tag: str) -> list[dict[str, str | None]]:
        return [a for s, t, a in self.tags if s == section and t == tag]


@pytest.fixture(scope="module")
def report(report_run: ReportRun, tmp_path_factory: pytest.TempPathFactory) -> Page:
    tmp = tmp_path_factory.mktemp("report")
    budgets = tmp / "otelperf.toml"
    budgets.write_text('[defaults]\np95 = "500ms"\n[routes."GET /orders"]\np95 = "1ms"\n')
    baseline = tmp / "baseline.json"
    baseline.write_text(json.dumps({"routes": {"GET /orders": {"p95_ms": 1.0, "rps": 1.0, "error_rate": 0}}}))
    out = tmp / "report.html"
    args = ["--budgets", str(budgets), "--baseline", str(baseline), "--prometheus", PROMETHEUS]
    done = run_otelperf(*html_report(out, report_run), *args, "--jaeger", JAEGER, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {out}" in done.stdout
    return Page(out.read_text(encoding="utf-8"))


def test_summary_lists_the_routes_with_verdicts(report: Page, report_run: ReportRun) -> None:
    summary = report.visible("summary")
    for route in ROUTES:
        assert route in summary
    assert "over budget" in summary  # GET /orders against its 1 ms budget
    assert "p95 " in summary and "> 1 ms" in summary


def test_every_route_has_a_non_empty_latency_chart_with_its_budget(report: Page) -> None:
    text = report.visible("latency")
    for route in ROUTES:
        assert f"{route}: latency percentiles" in text
    lines = report.all("latency", "polyline")
    dots = report.all("latency", "circle")
    assert len(lines) >= len(ROUTES), "each route's percentiles span several points over 20 s"
    assert "no data in this window" not in text
    thresholds = report.all("latency", "line")
    assert sum(1 for a in thresholds if a.get("class") == "threshold") >= len(ROUTES)
    assert any(a.get("class") == "breach" for a in dots), "GET /orders is over its 1 ms budget"


def test_throughput_and_error_charts_have_data(report: Page) -> None:
    assert len(report.all("traffic", "svg")) == 2
    assert report.all("traffic", "polyline")


def test_database_and_findings_sections(report: Page) -> None:
    assert "SELECT" in report.visible("database")
    findings = report.visible("findings")
    assert "n_plus_one" in findings and "order_items" in findings


def test_finding_links_resolve_in_jaeger(report: Page) -> None:
    links = [a["href"] or "" for a in report.all("findings", "a")]
    assert links, "no finding links to Jaeger"
    assert all(href.startswith(f"{JAEGER}/trace/") for href in links)
    trace_id = links[0].rsplit("/", 1)[1]
    spans = Jaeger(JAEGER).trace(trace_id).spans
    assert spans and {s.service for s in spans} == {SERVICE}
    events = [event.name for s in spans for event in s.events]
    assert "otelperf.finding" in events


def test_baseline_comparison_table(report: Page) -> None:
    text = report.visible("baseline")
    assert "GET /orders" in text and "%" in text


def test_jaeger_down_still_writes_the_report_with_a_note(report_run: ReportRun, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    args = ["--prometheus", PROMETHEUS, "--jaeger", f"http://127.0.0.1:{free_port()}"]
    done = run_otelperf(*html_report(out, report_run), *args, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    page = Page(out.read_text(encoding="utf-8"))
    assert "findings are shown without links to their traces" in page.visible("")
    assert "n_plus_one" in page.visible("findings") and not page.all("findings", "a")


def test_report_is_self_contained(report: Page) -> None:
    for _, tag, attrs in report.tags:
        assert tag not in ("script", "link", "img", "iframe")
        assert "src" not in attrs
