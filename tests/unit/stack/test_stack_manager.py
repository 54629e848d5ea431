"""Stack decisions that start no process: where configs are, what to run, refusing early, safe down."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from otelperf.stack import Stack, StackError
from otelperf.stack.manager import resolve_config_dir
from otelperf.stack.ports import read_cmdline
from otelperf.stack.state import ProcessRecord, start_ticks

REPO = Path(__file__).resolve().parents[3]


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _config_dir(root: Path, *extra: str) -> Path:
    for relative in ("collector-config/otelcol.yaml", *extra):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("# test\n")
    return root


def test_config_dir_defaults_to_this_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_dir(None, {}) == REPO


def test_config_dir_from_argument_or_environment(tmp_path: Path) -> None:
    mine = _config_dir(tmp_path / "mine")
    assert resolve_config_dir(mine, {"OTELPERF_STACK_CONFIG_DIR": "/elsewhere"}) == mine
    assert resolve_config_dir(None, {"OTELPERF_STACK_CONFIG_DIR": str(mine)}) == mine
    with pytest.raises(StackError, match=r"has no collector-config/otelcol.yaml: give the otelperf checkout"):
        resolve_config_dir(tmp_path / "empty", {})


def test_alertmanager_is_skipped_with_a_note_until_it_has_a_config(tmp_path: Path) -> None:
    configs = _config_dir(tmp_path / "repo")
    env = {"OTELPERF_ALERTMANAGER": str(_executable(tmp_path / "am")), "PATH": str(tmp_path)}
    components, notes = Stack(configs, tmp_path / "s", environ=env).plan()
    assert [c.name for c in components] == ["jaeger", "prometheus", "collector"]
    assert notes == [
        "Alertmanager not started: no config yet "
        "(alertmanager/alertmanager.yml or prometheus/alertmanager.yml)"
    ]

    _config_dir(configs, "alertmanager/alertmanager.yml")
    components, notes = Stack(configs, tmp_path / "s", environ=env).plan()
    assert [c.name for c in components] == ["jaeger", "prometheus", "collector", "alertmanager"]
    assert notes == []

    components, notes = Stack(configs, tmp_path / "s", environ=env, with_alertmanager=False).plan()
    assert [c.name for c in components] == ["jaeger", "prometheus", "collector"]


def test_alertmanager_asked_for_but_missing_is_an_error(tmp_path: Path) -> None:
    env = {"OTELPERF_ALERTMANAGER": str(tmp_path / "no-such-alertmanager"), "PATH": str(tmp_path)}
    stack = Stack(REPO, tmp_path / "s", environ=env, with_alertmanager=True)
    with pytest.raises(StackError, match=r"OTELPERF_ALERTMANAGER=.* is not an executable file"):
        stack.plan()


def test_missing_binaries_are_all_reported_before_anything_starts(tmp_path: Path) -> None:
    env = {
        "OTELPERF_CACHE": str(tmp_path / "cache"),
        "PATH": str(tmp_path / "empty"),
        "OTELPERF_PROMETHEUS": str(tmp_path / "no-prometheus"),
    }
    stack = Stack(REPO, tmp_path / "state", environ=env, with_alertmanager=False)
    with pytest.raises(StackError) as caught:
        stack.up(timeout=5)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("Jaeger binary not found")
    assert lines[0].endswith("install it with `scripts/install_stack.sh` (or `make setup`)")
    assert lines[1].startswith(f"OTELPERF_PROMETHEUS={tmp_path / 'no-prometheus'} is not an executable file")
    assert lines[2].startswith("OpenTelemetry Collector binary not found")
    assert stack.state.recorded() == []


def test_status_of_a_stack_never_started(tmp_path: Path) -> None:
    status = Stack(REPO, tmp_path / "state").status()
    assert [(c.name, c.running, c.healthy, c.pid) for c in status.components] == [
        ("jaeger", False, False, None),
        ("prometheus", False, False, None),
        ("collector", False, False, None),
    ]
    assert not status.all_up
    assert status.telemetry is None
    data = status.to_dict()
    assert data["all_up"] is False
    assert data["components"][2]["ports"][1] == {"port": 4318, "label": "collector OTLP/HTTP"}
    assert data["urls"]["Jaeger UI/API"] == "http://127.0.0.1:16686"


def test_down_with_nothing_recorded(tmp_path: Path) -> None:
    assert Stack(REPO, tmp_path / "state").down() == ["nothing was running"]


def test_down_never_signals_a_pid_that_is_not_the_process_it_started(tmp_path: Path) -> None:
    stack = Stack(REPO, tmp_path / "state")
    # Our own pid, recorded as if it ran Jaeger: pid reuse. `down` must leave this test alive.
    stack.state.write(
        ProcessRecord("jaeger", os.getpid(), ["/x/jaeger", "--config", "c"], start_ticks(os.getpid()), 0.0)
    )
    argv = read_cmdline(os.getpid()) or []
    stack.state.write(ProcessRecord("prometheus", os.getpid(), argv, 1, 0.0))  # same argv, other start
    assert stack.down() == [
        f"prometheus: pid {os.getpid()} is no longer the process we started; left alone",
        f"jaeger: pid {os.getpid()} is no longer the process we started; left alone",
    ]
    assert stack.state.recorded() == []


def test_down_forgets_a_process_that_already_exited(tmp_path: Path) -> None:
    stack = Stack(REPO, tmp_path / "state")
    stack.state.write(ProcessRecord("collector", 2**22 + 12345, ["/x/otelcol"], None, time.time()))
    assert stack.down() == [f"collector: was not running (pid {2**22 + 12345} gone)"]
    assert stack.state.recorded() == []
    assert not Stack(REPO, tmp_path / "state").status().components[2].running


def test_unknown_jaeger_storage_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="unknown Jaeger storage"):
        Stack(REPO, tmp_path, jaeger_storage="elasticsearch")


# -- one component: stop / kill / start (the e2e delivery test restarts the real ones) -------------


@pytest.fixture
def fake_process(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts a stand-in for a stack process (optionally one that ignores SIGTERM) and records it
    under the given component name, as `up` would."""
    started: list[subprocess.Popen[bytes]] = []

    def start(stack: Stack, component: str, *, ignore_term: bool = False) -> subprocess.Popen[bytes]:
        script = tmp_path / f"fake-{component}"
        ready = tmp_path / f"fake-{component}.ready"
        trap = "trap '' TERM\n" if ignore_term else ""
        # It says when it is ready: on a busy machine a SIGTERM could otherwise arrive before the
        # shell has run its trap line, and end a process meant to ignore it.
        script.write_text(f"#!/bin/sh\n{trap}touch '{ready}'\nwhile :; do sleep 0.05; done\n")
        script.chmod(0o755)
        proc = subprocess.Popen([str(script)], start_new_session=True)
        started.append(proc)
        deadline = time.monotonic() + 10
        while not (ready.exists() and read_cmdline(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists(), f"the stand-in for {component} did not start"
        stack.state.write(
            ProcessRecord(component, proc.pid, [str(script)], start_ticks(proc.pid), time.time())
        )
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def test_stop_one_component_leaves_the_others_running(
    tmp_path: Path, fake_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    stack = Stack(REPO, tmp_path / "state")
    alertmanager = fake_process(stack, "alertmanager")
    other = fake_process(stack, "prometheus")
    message = stack.stop("alertmanager")
    assert re.fullmatch(rf"alertmanager: stopped pid {alertmanager.pid} in [\d.]+ s", message), message
    assert alertmanager.wait(timeout=5) == -signal.SIGTERM
    assert stack.state.recorded() == ["prometheus"]
    assert other.poll() is None
    assert stack.stop("alertmanager") == "alertmanager: not running"


def test_kill_is_sigkill_at_once_even_for_a_process_that_ignores_sigterm(
    tmp_path: Path, fake_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    stack = Stack(REPO, tmp_path / "state")
    proc = fake_process(stack, "alertmanager", ignore_term=True)
    message = stack.stop("alertmanager", timeout=60, kill=True)
    assert re.fullmatch(rf"alertmanager: killed \(SIGKILL\) pid {proc.pid} in [\d.]+ s", message), message
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert stack.state.recorded() == []


def test_a_stop_that_sigterm_does_not_end_falls_back_to_sigkill(
    tmp_path: Path, fake_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    stack = Stack(REPO, tmp_path / "state")
    proc = fake_process(stack, "alertmanager", ignore_term=True)
    message = stack.stop("alertmanager", timeout=0.3)
    assert message.startswith(f"alertmanager: killed (did not stop within 0 s of SIGTERM) pid {proc.pid}")
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_start_leaves_a_running_component_alone(
    tmp_path: Path, fake_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    stack = Stack(REPO, tmp_path / "state")
    proc = fake_process(stack, "collector")
    assert stack.start("collector") is False
    record = stack.state.read("collector")
    assert record is not None and record.pid == proc.pid
    assert proc.poll() is None


def test_start_without_a_binary_says_how_to_install_it_and_records_nothing(tmp_path: Path) -> None:
    env = {"OTELPERF_CACHE": str(tmp_path / "cache"), "PATH": str(tmp_path / "empty")}
    stack = Stack(REPO, tmp_path / "state", environ=env)
    with pytest.raises(StackError, match=r"^Jaeger binary not found .*install it with"):
        stack.start("jaeger")
    assert stack.state.recorded() == []


def test_an_unknown_component_is_refused(tmp_path: Path) -> None:
    stack = Stack(REPO, tmp_path / "state")
    expected = "unknown component 'grafana': one of jaeger, prometheus, collector, alertmanager"
    for call in (stack.stop, stack.start, stack.restart):
        with pytest.raises(StackError, match=re.escape(expected)):
            call("grafana")
