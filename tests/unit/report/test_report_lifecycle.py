"""NEW / KNOWN / REGRESSED: the rules, and `otelperf report` against a loopback stand-in for
Prometheus' query API holding two versions' findings (real Prometheus: tests/e2e/test_e2e_lifecycle.py)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from otelperf.cli import main
from otelperf.report import RankedFinding, format_ranked
from otelperf.report.lifecycle import Earlier, combine, mark, status


def row(fingerprint: str, occurrences: float, total_ms: float, statements: float, **kw: Any) -> RankedFinding:
    base: dict[str, Any] = {
        "detector": "n_plus_one",
        "severity": "warning",
        "route": "GET /orders",
        "fingerprint": fingerprint,
        "statement": f"SELECT {fingerprint}",
        "occurrences": occurrences,
        "total_ms": total_ms,
        "statements": statements,
        "version": "2.0",
    }
    base.update(kw)
    return RankedFinding(**base)


def test_status_rules() -> None:
    earlier = Earlier(occurrences=100, total_ms=5000, statements=1200, versions=("1.0",))  # 12/req, 50 ms/req
    assert status(row("f", 10, 500, 120), None) == "NEW"
    assert status(row("f", 10, 500, 120), earlier) == "KNOWN"
    assert status(row("f", 10, 500, 130), earlier) == "KNOWN"  # 13 vs 12 statements: within 20 %
    assert status(row("f", 10, 500, 400), earlier) == "REGRESSED"  # 40 vs 12 statements per request
    assert status(row("f", 10, 700, 120), earlier) == "KNOWN"  # 70 vs 50 ms: within 50 %
    assert status(row("f", 10, 900, 120), earlier) == "REGRESSED"  # 90 vs 50 ms per request
    small = Earlier(occurrences=10, total_ms=10, statements=0, versions=("1.0",))  # 1 ms/req
    assert status(row("f", 10, 50, 0), small) == "KNOWN"  # 5 ms vs 1 ms: +400 % but only 4 ms


def test_combine_sums_the_earlier_versions_and_mark_leaves_unversioned_rows() -> None:
    counts = {("n_plus_one", "GET /o", "f", "1.0"): 10.0, ("n_plus_one", "GET /o", "f", "1.1"): 30.0}
    times = {("n_plus_one", "GET /o", "f", "1.0"): 100.0, ("n_plus_one", "GET /o", "f", "1.1"): 300.0}
    (key, earlier), *_ = combine(counts, times, {}).items()
    assert key == ("n_plus_one", "GET /o", "f")
    assert earlier == Earlier(40.0, 400.0, 0.0, ("1.0", "1.1"))
    rows = mark([row("f", 1, 1, 0, version=""), row("g", 1, 1, 0)], {})
    assert [r.status for r in rows] == ["", "NEW"]


FOUR = {
    # (fingerprint, labels extra, now: count, ms, statements, earlier (version 1.0): count, ms, statements)
    "f1": ({}, (10, 500, 120), (100, 5000, 1200)),  # KNOWN
    "f3": ({}, (10, 300, 60), None),  # NEW
    "f4": ({}, (10, 400, 400), (100, 4000, 1200)),  # REGRESSED: 40 vs 12 per request
    "f5": ({"expected": "true"}, (5, 50, 30), None),  # NEW, but expected
}
METRICS = (
    "otelperf_findings_total",
    "otelperf_findings_time_milliseconds_total",
    "otelperf_findings_statements_total",
)


def _answer(query: str) -> list[dict[str, Any]]:
    if "timestamp(" in query:  # the newest version: first seen last
        return [
            {"metric": {"service_version": "1.0"}, "value": [0, "1000"]},
            {"metric": {"service_version": "2.0"}, "value": [0, "2000"]},
        ]
    metric = next(m for m in sorted(METRICS, key=len, reverse=True) if m in query)
    index = METRICS.index(metric)
    out = []
    for fingerprint, (extra, now, earlier) in FOUR.items():
        labels = {"detector": "n_plus_one", "route": "GET /orders", "fingerprint": fingerprint, **extra}
        if " offset " in query:  # the report window's growth, by version
            labels.update(severity="warning", statement=f"SELECT {fingerprint}", service_version="2.0")
            out.append({"metric": labels, "value": [0, str(now[index])]})
            if earlier is not None:  # the old version's processes are still in the window
                old = {**labels, "service_version": "1.0"}
                out.append({"metric": old, "value": [0, str(earlier[index] / 10)]})
        elif earlier is not None and 'service_version!="2.0"' in query:  # the earlier versions' history
            out.append({"metric": {**labels, "service_version": "1.0"}, "value": [0, str(earlier[index])]})
    return out


@pytest.fixture
def prometheus() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": _answer(query)}}
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_report_marks_each_finding_of_the_newest_version(
    prometheus: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--prometheus", prometheus, "--window", "15m"]) == 0
    out = capsys.readouterr().out
    lines = {fp: next(line for line in out.splitlines() if f"SELECT {fp}" in line) for fp in FOUR}
    assert "KNOWN" in lines["f1"] and "NEW" not in lines["f1"]
    assert " NEW " in lines["f3"]
    assert "REGRESSED" in lines["f4"]
    assert "NEW expected" in lines["f5"]
    assert "version 2.0: NEW = no earlier version had it" in out
    # Only the current version's rows are ranked (the old processes' rows are history).
    assert sum("SELECT f1" in line for line in out.splitlines()) == 1


def test_report_of_an_explicit_version(prometheus: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--prometheus", prometheus, "--window", "15m", "--version", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "version 1.0" in out


def test_format_without_versions_has_no_status_column() -> None:
    text = format_ranked([row("f1", 1, 10, 2, version="")])
    assert text.splitlines()[0].split() == [
        "time",
        "ms",
        "count",
        "detector",
        "severity",
        "route",
        "statement",
    ]


def test_format_marks_expected_rows_of_the_in_process_sink() -> None:
    from otelperf.detectors._findings import FindingStats

    plain = FindingStats("n_plus_one", "GET /a", "f", "SELECT a", "warning", "hint", 1, 10.0)
    marked = FindingStats("n_plus_one", "GET /b", "g", "SELECT b", "warning", "hint", 1, 5.0, expected="")
    lines = format_ranked([plain, marked]).splitlines()
    assert "expected" not in lines[1] and "expected" in lines[2]
