"""Waterfalls from the real Jaeger: ``otelperf trace <id>`` of a known N+1 request, and the SVG
waterfall the HTML report draws for the finding.

The shop runs under ``otelperf run`` (its own service name) with ``OTELPERF_N_PLUS_ONE_MIN_MS=0``
so that its N+1 list is a finding however fast PostgreSQL answers; each request carries a trace id
the test chose. The commands are the real CLI, reading the real Jaeger (and Prometheus).
"""

from __future__ import annotations

import re
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.e2e._backend import (
    JAEGER,
    PROMETHEUS,
    StackUrls,
    jaeger_trace,
    poll,
    prometheus_result,
    wait_spans_stored,
)
from tests.e2e._shop import SentRequest, run_otelperf, send_traced, shop_env, start_shop

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVICE = f"shop-e2e-waterfall-{uuid.uuid4().hex[:6]}"
LIST_LIMIT = 8
SVG = "{http://www.w3.org/2000/svg}"
FOLD = re.compile(r" x(\d+)\s")


@dataclass(frozen=True)
class WaterfallRun:
    n_plus_one: SentRequest
    eager: SentRequest
    listed: int  # orders the N+1 list returned: one SELECT order_items each
    started: float
    finished: float


@pytest.fixture(scope="module")
def waterfall_run(stack: StackUrls, shop_database: tuple[str, str], redis_url: str) -> WaterfallRun:
    _, db_url = shop_database
    env = shop_env(
        postgres_url=db_url,
        redis_url=redis_url,
        cache_prefix=f"e2e-waterfall-{uuid.uuid4().hex[:8]}:",
        OTELPERF_N_PLUS_ONE_MIN_MS="0",
    )
    started = time.time()
    with start_shop(service=SERVICE, env=env) as shop, httpx.Client(base_url=shop.url) as client:
        n_plus_one = send_traced(client, "list", "/orders", {"limit": LIST_LIMIT})
        eager = send_traced(client, "eager", "/orders-eager", {"limit": LIST_LIMIT})
    assert shop.returncode == 0, f"shop exited with {shop.returncode}:\n{shop.output}"
    wait_spans_stored()
    listed = len(n_plus_one.body)
    assert listed >= 5, f"the N+1 list returned {listed} orders; the detector needs at least 5"
    jaeger_trace(n_plus_one.trace_id, min_spans=listed + 1)
    poll(
        "the run's findings in Prometheus",
        lambda: prometheus_result(f'otelperf_findings_total{{job="{SERVICE}", detector="n_plus_one"}}'),
        bool,
        30,
    )
    return WaterfallRun(n_plus_one, eager, listed, started, time.time())


def test_otelperf_trace_prints_the_waterfall_with_the_n_plus_one_marked(waterfall_run: WaterfallRun) -> None:
    done = run_otelperf("trace", waterfall_run.n_plus_one.trace_id, "--jaeger", JAEGER, "--width", "140")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "\x1b[" not in done.stdout  # not a terminal: no colour
    assert all(len(line) <= 140 for line in lines)
    assert lines[0].startswith(f"trace {waterfall_run.n_plus_one.trace_id}")
    rows = lines[2:]
    assert rows[0].startswith("  GET /orders"), rows[0]
    marked = [line for line in rows if line.startswith("! ")]
    assert marked, done.stdout
    assert all("SELECT" in line and " db" in line for line in marked)
    # Every lazy load is marked: shown one by one, or folded into one "x N" line.
    counted = sum(int(m.group(1)) if (m := FOLD.search(line)) else 1 for line in marked)
    assert counted == waterfall_run.listed, done.stdout
    # The query for the orders themselves is not one of them.
    assert any("SELECT" in line and not line.startswith("!") for line in rows), done.stdout
    hint = rows[rows.index(marked[-1]) + 1]
    assert "n_plus_one [" in hint and f"x{waterfall_run.listed}" in hint, done.stdout


def test_otelperf_trace_of_the_eager_list_marks_nothing(waterfall_run: WaterfallRun) -> None:
    done = run_otelperf("trace", waterfall_run.eager.trace_id, "--jaeger", JAEGER, "--no-color")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SELECT" in done.stdout
    assert not [line for line in done.stdout.splitlines() if line.startswith("! ")], done.stdout


def test_otelperf_trace_of_an_unknown_id_in_the_real_jaeger(stack: StackUrls) -> None:
    unknown = uuid.uuid4().hex
    done = run_otelperf("trace", unknown, "--jaeger", JAEGER)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no trace {unknown} in Jaeger at {JAEGER}" in done.stderr


def test_the_html_report_draws_the_n_plus_one_trace_as_an_svg_waterfall(
    waterfall_run: WaterfallRun, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    window = ["--start", f"{waterfall_run.started - 5:.0f}", "--end", f"{waterfall_run.finished + 5:.0f}"]
    done = run_otelperf(
        "report",
        "--html",
        str(out),
        "--service",
        SERVICE,
        *window,
        "--prometheus",
        PROMETHEUS,
        "--jaeger",
        JAEGER,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    html = out.read_text(encoding="utf-8")
    figure = f'<figure class="waterfall" data-trace-id="{waterfall_run.n_plus_one.trace_id}">'
    assert figure in html, "no waterfall of the N+1 request's trace in the report"
    start = html.index("<svg", html.index(figure))
    svg = ET.fromstring(html[start : html.index("</svg>", start) + len("</svg>")])
    rows = [g for g in svg.iter(f"{SVG}g") if "span" in (g.get("class") or "").split()]
    offending = [g for g in rows if "offending" in (g.get("class") or "").split()]
    assert offending and len(offending) < len(rows)
    tips = [(g.find(f"{SVG}title").text or "") for g in offending]  # type: ignore[union-attr]
    assert all("order_items" in tip for tip in tips), tips
    counted = sum(int(m.group(1)) if (m := re.search(r" \u00d7 (\d+)\n", tip)) else 1 for tip in tips)
    assert counted == waterfall_run.listed
    hints = [t.text or "" for t in svg.iter(f"{SVG}text") if t.get("class") == "hint"]
    assert any("n_plus_one" in h for h in hints), hints
