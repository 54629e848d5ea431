"""``otelperf trace TRACE_ID`` against a fake Jaeger on loopback: the waterfall it prints, and its
errors (malformed id, unknown trace, Jaeger down or answering nonsense)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from tests.unit.backends.fake_backend import closed_port_url, fake_backend
from tests.unit.report.traces import S, db, document, n_plus_one_spans, n_plus_one_trace
from tests.unit.report.traces import trace as make_trace

from otelperf.cli import main
from otelperf.cli.trace import format_waterfall, normalize_trace_id
from otelperf.report.waterfall import build

# The id docs/cli.md shows.
DOC_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
NOT_FOUND = {"error": {"httpCode": 404, "message": "trace not found"}}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shop_document(trace_id: str = DOC_TRACE_ID, repeats: int = 8) -> dict[str, Any]:
    """Jaeger's answer for a GET /orders with an N+1 of ``repeats`` lazy loads (call sites on)."""
    return document(n_plus_one_spans(repeats), trace_id)


def test_the_trace_command_prints_the_waterfall_with_the_n_plus_one_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = {f"/api/v3/traces/{DOC_TRACE_ID}": (200, shop_document())}
    with fake_backend(answers) as jaeger:
        code = main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url, "--width", "120"])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert not ANSI.search(out.out)  # captured output is not a terminal: no colour
    assert lines[0].startswith(f"trace {DOC_TRACE_ID}") and "1 finding" in lines[0]
    assert all(len(line) <= 120 for line in lines)
    rows = lines[2:]
    assert rows[0].startswith("  GET /orders")
    assert rows[1].startswith("    list_orders")
    marked = [line for line in rows if line.startswith("! ")]
    assert len(marked) == 6  # five statements and the fold of the other three
    assert all("SELECT shop" in line and "app/routes.py:42 list_orders()" in line for line in marked)
    assert "SELECT shop x3" in marked[-1]
    hint = rows[rows.index(marked[-1]) + 1]
    assert "n_plus_one [critical] x8" in hint and "selectinload()" in hint
    orders = next(line for line in rows if "SELECT shop" in line and not line.startswith("!"))
    assert " db" in orders


def test_a_sixteen_digit_id_is_padded_and_the_width_is_respected(capsys: pytest.CaptureFixture[str]) -> None:
    short = DOC_TRACE_ID[16:]
    padded = "0" * 16 + short
    answers = {f"/api/v3/traces/{padded}": (200, shop_document(padded))}
    with fake_backend(answers) as jaeger:
        assert main(["trace", short.upper(), "--jaeger", jaeger.url, "--width", "60", "--no-color"]) == 0
        assert [path for path, _ in jaeger.asked] == [f"/api/v3/traces/{padded}"]
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(len(line) <= 60 for line in lines)
    assert sum(1 for line in lines if line.startswith("! ")) == 6


def test_an_unknown_trace_exits_1_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    unknown = "f" * 32
    with fake_backend({f"/api/v3/traces/{unknown}": (404, NOT_FOUND)}) as jaeger:
        assert main(["trace", unknown, "--jaeger", jaeger.url]) == 1
    err = capsys.readouterr().err
    assert f"no trace {unknown} in Jaeger at {jaeger.url}" in err
    # An empty answer (no resourceSpans) is the same: Jaeger holds none of it.
    with fake_backend({f"/api/v3/traces/{unknown}": (200, {"result": {"resourceSpans": []}})}) as jaeger:
        assert main(["trace", unknown, "--jaeger", jaeger.url]) == 1
    assert "no trace" in capsys.readouterr().err


def test_jaeger_unreachable_exits_2_naming_the_url_and_the_stack(capsys: pytest.CaptureFixture[str]) -> None:
    url = closed_port_url()
    assert main(["trace", DOC_TRACE_ID, "--jaeger", url, "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach Jaeger at {url}" in err and "`otelperf stack up`" in err


def test_jaeger_answering_an_error_or_nonsense_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    path = f"/api/v3/traces/{DOC_TRACE_ID}"
    with fake_backend({path: (500, "internal error\n")}) as jaeger:
        assert main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url]) == 2
    assert "HTTP 500" in capsys.readouterr().err
    with fake_backend({path: (200, "<html>placeholder UI</html>")}) as jaeger:
        assert main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url]) == 2
    assert "did not answer JSON" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["xyz", "4bf92f3577b34da6a3ce929d0e0e47", "0" * 32, "g" * 32, ""])
def test_a_malformed_id_exits_2_without_asking_jaeger(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_backend({}) as jaeger:
        assert main(["trace", bad, "--jaeger", jaeger.url]) == 2
        assert jaeger.asked == []
    assert "malformed trace id" in capsys.readouterr().err


def test_trace_ids_are_lower_case_and_sixteen_digits_are_padded() -> None:
    assert normalize_trace_id(" 4BF92F3577B34DA6A3CE929D0E0E4736 ") == DOC_TRACE_ID
    assert normalize_trace_id("a3ce929d0e0e4736") == "0" * 16 + "a3ce929d0e0e4736"


def test_no_color_is_honoured_and_colour_codes_do_not_count_towards_the_width(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    waterfall = build(n_plus_one_trace(repeats=8))
    coloured = format_waterfall(waterfall, width=90, color=True)
    assert any("\x1b[1;31m" in line for line in coloured)  # offending rows in red
    assert all(len(ANSI.sub("", line)) <= 90 for line in coloured)
    assert [ANSI.sub("", line) for line in coloured] == format_waterfall(waterfall, width=90, color=False)
    # On a terminal, NO_COLOR (and --no-color) turn colour off.
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    answers = {f"/api/v3/traces/{DOC_TRACE_ID}": (200, shop_document())}
    with fake_backend(answers) as jaeger:
        assert main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url, "--width", "90"]) == 0
        assert ANSI.search(capsys.readouterr().out)
        monkeypatch.setenv("NO_COLOR", "1")
        assert main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url, "--width", "90"]) == 0
        assert not ANSI.search(capsys.readouterr().out)
        monkeypatch.delenv("NO_COLOR")
        assert main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url, "--no-color"]) == 0
        assert not ANSI.search(capsys.readouterr().out)


def test_the_terminal_width_is_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    answers = {f"/api/v3/traces/{DOC_TRACE_ID}": (200, shop_document())}
    with fake_backend(answers) as jaeger:
        assert main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 72 and max(len(line) for line in lines) >= 60


def test_a_ten_thousand_span_trace_prints_a_bounded_waterfall(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spans = [S("root", "GET /bulk", 0, 10_000, kind=2)]
    for p in range(100):
        spans.append(S(f"p{p}", f"batch {p}", p * 100, p * 100 + 99, "root"))
        spans += [
            db(f"p{p}q{q}", p * 100 + q, p * 100 + q + 0.5, f"p{p}", statement=f"SELECT {q % 3}")
            for q in range(99)
        ]
    doc = document(spans, DOC_TRACE_ID)
    assert len(make_trace(spans, DOC_TRACE_ID).spans) == 10_001
    with fake_backend({f"/api/v3/traces/{DOC_TRACE_ID}": (200, doc)}) as jaeger:
        assert (
            main(["trace", DOC_TRACE_ID, "--jaeger", jaeger.url, "--width", "100", "--max-rows", "150"]) == 0
        )
    lines = capsys.readouterr().out.splitlines()
    assert "10,001 spans" in lines[0]
    assert 100 < len(lines) <= 2 + 151
    assert "more spans" in lines[-1]


def test_python_m_otelperf_trace_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "otelperf", "trace", "nothex", "--jaeger", "http://127.0.0.1:9"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "malformed trace id" in done.stderr


def test_an_error_span_is_marked_in_the_margin_and_the_narrowest_width_holds() -> None:
    spans = n_plus_one_spans(6)
    spans[2].error = True  # the orders query failed
    lines = format_waterfall(build(make_trace(spans)), width=40, color=False)
    assert all(len(line) <= 40 for line in lines)
    marked = [line for line in lines if line[:2] == " E"]
    assert len(marked) == 1 and "SELECT" in marked[0] and "6.00 ms db" in marked[0]
    assert sum(1 for line in lines if line.startswith("!")) == 6
