"""`otelperf stack ...` arguments, output and exit codes, without starting processes."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest

from otelperf.cli import build_parser, main
from otelperf.cli.stack import follow_files, format_status
from otelperf.stack import StackStatus
from otelperf.stack.components import COLLECTOR, JAEGER, PROMETHEUS, Component
from otelperf.stack.manager import ComponentStatus
from otelperf.stack.metrics import SpanFlow


def test_parser_accepts_every_action_and_its_options() -> None:
    parser = build_parser()
    up = parser.parse_args(["stack", "up", "--state-dir", "/s", "--config-dir", "/c", "--timeout", "5"])
    assert (up.action, up.state_dir, up.config_dir, up.timeout) == ("up", "/s", "/c", 5.0)
    assert up.with_alertmanager is None and up.jaeger_storage == "memory"
    assert parser.parse_args(["stack", "up", "--with-alertmanager"]).with_alertmanager is True
    assert parser.parse_args(["stack", "up", "--without-alertmanager"]).with_alertmanager is False
    assert parser.parse_args(["stack", "down", "--purge"]).purge is True
    assert parser.parse_args(["stack", "status", "--json"]).json is True
    logs = parser.parse_args(["stack", "logs", "jaeger", "-n", "7", "-f"])
    assert (logs.component, logs.lines, logs.follow) == ("jaeger", 7, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["stack", "logs", "grafana"])
    with pytest.raises(SystemExit):
        parser.parse_args(["stack"])


def test_status_of_a_stopped_stack_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack", "status", "--state-dir", str(tmp_path)]) == 3
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out if not line.startswith(" ")][:3] == [
        ["jaeger", "stopped"],
        ["prometheus", "stopped"],
        ["collector", "stopped"],
    ]
    assert out[-1] == "telemetry: collector not running"

    assert main(["stack", "status", "--state-dir", str(tmp_path), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["all_up"] is False
    assert report["state_dir"] == str(tmp_path)
    assert [c["name"] for c in report["components"]] == ["jaeger", "prometheus", "collector"]


def test_format_status_of_a_running_stack(tmp_path: Path) -> None:
    def running(c: Component, pid: int) -> ComponentStatus:
        return ComponentStatus(c.name, c.title, True, True, pid, c.ports, c.health_url, tmp_path / "x.log")

    status = StackStatus(
        [running(JAEGER, 10), running(PROMETHEUS, 11), running(COLLECTOR, 12)], SpanFlow(3, 0, 3, 0)
    )
    assert status.all_up
    assert format_status(status) == [
        "jaeger       running  pid 10      healthy   ports 14317,14318,16686,16685,13134,14269",
        "prometheus   running  pid 11      healthy   ports 9090",
        "collector    running  pid 12      healthy   ports 4317,4318,8888,8889,13133",
        "telemetry: flowing: 3 spans accepted, 0 refused, 3 sent to Jaeger, 0 failed",
    ]


def test_format_status_shows_span_delivery_per_service(tmp_path: Path) -> None:
    from otelperf.export.figures import ServiceDelivery

    delivery = {
        "shop": ServiceDelivery("shop", 1200, {"buffer_full": 512}),
        "inventory": ServiceDelivery("inventory", 80),
    }
    status = StackStatus([], None, delivery=delivery)
    assert format_status(status)[-3:] == [
        "span delivery per service (otel.sdk.* metrics the services exported):",
        "  inventory  80 delivered, 0 dropped (none)",
        "  shop       1200 delivered, 512 dropped (buffer_full: 512)",
    ]


def test_up_with_a_missing_binary_prints_the_fix_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTELPERF_OTELCOL", str(tmp_path / "otelcol-not-installed"))
    monkeypatch.setenv("OTELPERF_JAEGER", str(tmp_path / "jaeger-not-installed"))
    assert main(["stack", "up", "--state-dir", str(tmp_path / "state"), "--without-alertmanager"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otelperf stack up:\n  OTELPERF_JAEGER=")
    assert f"  OTELPERF_OTELCOL={tmp_path / 'otelcol-not-installed'} is not an executable file" in err
    assert not (tmp_path / "state" / "run" / "collector.json").exists()


def test_logs_before_any_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stack", "logs", "--state-dir", str(tmp_path)]) == 1
    assert "no log yet under" in capsys.readouterr().err


def test_logs_tail_each_component(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "jaeger.log").write_text("j1\nj2\nj3\n")
    (tmp_path / "logs" / "collector.log").write_text("c1\nc2\n")
    assert main(["stack", "logs", "-n", "2", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (
        f"==> jaeger ({tmp_path / 'logs/jaeger.log'}) <==\nj2\nj3\n"
        f"==> collector ({tmp_path / 'logs/collector.log'}) <==\nc1\nc2\n"
    )
    assert main(["stack", "logs", "jaeger", "-n", "1", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "j3\n"


def test_follow_prints_new_lines_and_rereads_a_rotated_log(tmp_path: Path) -> None:
    log = tmp_path / "collector.log"
    log.write_text("old\n")

    def writer() -> None:
        time.sleep(0.4)
        with log.open("a") as fh:
            fh.write("new 1\nnew ")
            fh.flush()
            time.sleep(0.4)
            fh.write("2\n")
        time.sleep(0.4)
        rotated = tmp_path / "collector.log.next"
        rotated.write_text("after up\n")
        os.replace(rotated, log)

    thread = threading.Thread(target=writer)
    thread.start()
    out = io.StringIO()
    follow_files({"collector": log}, out, prefix=True, stop_after=2.5)
    thread.join()
    assert out.getvalue() == "collector: new 1\ncollector: new 2\ncollector: after up\n"
