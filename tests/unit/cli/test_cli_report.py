"""``otelperf report``: the findings table from Prometheus, and the HTML report's failure modes."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from otelperf.cli import main

N_PLUS_ONE = {
    "detector": "n_plus_one",
    "severity": "warning",
    "route": "GET /orders",
    "fingerprint": "f1",
    "statement": "SELECT order_items WHERE order_id = ?",
}
SLOW = {**N_PLUS_ONE, "detector": "slow_query", "fingerprint": "f2", "statement": "SELECT products"}


@dataclass
class FakePrometheus:
    url: str
    queries: list[str]
    answers: dict[str, list[tuple[dict[str, str], str]]]


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    """A loopback stand-in for Prometheus' query API holding two findings' series and nothing else."""
    queries: list[str] = []
    answers = {
        "otelperf_findings_time_milliseconds_total": [(N_PLUS_ONE, "1250"), (SLOW, "3400")],
        "otelperf_findings_total": [(N_PLUS_ONE, "25"), (SLOW, "4")],
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)["query"][0]
            queries.append(query)
            data: Any
            if url.path == "/api/v1/query":
                # The time series' name contains the count's: look for the longer one first.
                name = max((n for n in answers if n in query), key=len, default="")
                result = [{"metric": m, "value": [0, v]} for m, v in answers.get(name, [])]
                data = {"resultType": "vector", "result": result}
            elif url.path == "/api/v1/query_range":  # the HTML report's charts: no data in the window
                data = {"resultType": "matrix", "result": []}
            else:
                data = []
            body = json.dumps({"status": "success", "data": data})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield FakePrometheus(f"http://127.0.0.1:{server.server_address[1]}", queries, answers)
    server.shutdown()
    server.server_close()


def test_report_ranks_findings_by_the_time_they_cost(
    prometheus: FakePrometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    url, queries = prometheus.url, prometheus.queries
    assert main(["report", "--prometheus", url, "--window", "15m"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"findings of the last 15m, most time-consuming first (from {url})"
    assert out[1].split() == ["time", "ms", "count", "detector", "severity", "route", "statement"]
    assert [line.split()[:3] for line in out[2:]] == [
        ["3400", "4", "slow_query"],
        ["1250", "25", "n_plus_one"],
    ]
    assert all("[15m]" in q for q in queries)


def test_report_limit_keeps_the_costliest(
    prometheus: FakePrometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    url = prometheus.url
    assert main(["report", "--prometheus", url, "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("findings of the last 1h,")
    assert len(out) == 3 and "slow_query" in out[2]


def test_html_report_of_a_window_with_budgets_and_a_baseline(
    prometheus: FakePrometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prometheus.answers.clear()  # no findings: nothing to look up in Jaeger
    url, queries = prometheus.url, prometheus.queries
    monkeypatch.chdir(tmp_path)
    Path("otelperf.toml").write_text('service = "shop"\n[defaults]\np95 = "300ms"\n', encoding="utf-8")
    Path("baselines").mkdir()
    routes = {"GET /orders": {"p95_ms": 12.0, "rps": 40.0, "error_rate": 0.0}}
    Path("baselines/shop.json").write_text(json.dumps({"routes": routes}), encoding="utf-8")

    assert (
        main(["report", "--html", "report.html", "--service", "shop", "--since", "15m", "--prometheus", url])
        == 0
    )
    assert (
        capsys.readouterr().out
        == "wrote report.html: 0 routes (0 over budget), 0 kinds of findings, 15.0 min of shop\n"
    )
    html = Path("report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "shop" in html
    assert any('job="shop"' in q for q in queries)

    argv = [
        "report",
        "--html",
        "report.html",
        "--budgets",
        "otelperf.toml",
        "--baseline",
        "baselines/shop.json",
    ]
    assert main([*argv, "--prometheus", url]) == 0
    assert "of shop" in capsys.readouterr().out  # the service from the budgets file
    assert "GET /orders" in Path("report.html").read_text(encoding="utf-8")  # the baseline's route


def test_report_without_prometheus_says_how_to_start_it(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["report", "--prometheus", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"otelperf report: cannot read {url}: ")
    assert err.rstrip().endswith("(is the backend up? `otelperf stack up`)")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_prometheus_unreachable_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no budgets file around: the defaults
    out = tmp_path / "r.html"
    url = f"http://127.0.0.1:{closed_port()}"
    rc = main(["report", "--html", str(out), "--prometheus", url, "--since", "5m"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("otelperf report: Prometheus unreachable:") and url in err
    assert not out.exists()


def test_bad_window_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["report", "--html", str(tmp_path / "r.html"), "--since", "a while"])
    assert rc == 2
    assert "not a duration: 'a while'" in capsys.readouterr().err
