"""The ranked text report (``otelperf report`` and, in a process, the sink's table)."""

from __future__ import annotations

from otelperf.detectors._api import Finding
from otelperf.detectors._findings import FindingsSink
from otelperf.report import RankedFinding, format_ranked


def test_a_finding_with_a_call_site_shows_the_line_under_its_row() -> None:
    rows = [
        RankedFinding(
            "n_plus_one",
            "warning",
            "GET /authors",
            "f1",
            "SELECT book.id FROM book",
            3,
            120.0,
            call_site="app/routes.py:44 in list_authors()",
        ),
        RankedFinding("slow_query", "critical", "GET /stats", "f2", "SELECT count(*) FROM t", 1, 1500.0),
    ]
    lines = format_ranked(rows).splitlines()
    assert "n_plus_one" in lines[1] and "GET /authors" in lines[1]
    assert lines[2].strip() == "at app/routes.py:44 in list_authors()"
    assert "slow_query" in lines[3] and len(lines) == 4  # no call site: no line under it


def test_the_sinks_table_carries_the_latest_call_site() -> None:
    sink = FindingsSink(None)
    finding = Finding(
        detector="n_plus_one", severity="warning", route="GET /authors", fingerprint="f1",
        statement="SELECT book.id FROM book", count=6, duration_ms=12.0, trace_id="t", anchor_span_id="a",
        span_ids=(), hint="h", details={"call_site": "app/routes.py:44 in list_authors()"},
    )  # fmt: skip
    sink.record([finding])
    (stats,) = sink.ranked()
    assert stats.call_site == "app/routes.py:44 in list_authors()"
    assert "at app/routes.py:44 in list_authors()" in format_ranked(sink.ranked())


def test_the_status_column_keeps_the_table_aligned() -> None:
    rows = [
        RankedFinding("n_plus_one", "warning", "GET /a", "f1", "SELECT a", 3, 120.0, status="NEW"),
        RankedFinding("slow_query", "critical", "GET /b", "f2", "SELECT b", 1, 90.0, status="REGRESSED"),
    ]
    header, *lines = format_ranked(rows).splitlines()[:3]
    assert header.index("detector") == lines[0].index("n_plus_one") == lines[1].index("slow_query")
    short = format_ranked(rows[:1]).splitlines()  # "NEW" is shorter than its column's name
    assert short[0].index("detector") == short[1].index("n_plus_one")
