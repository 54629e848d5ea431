"""``otelperf run``: the child's environment, the refusals, and a real child started through
``python -m otelperf`` (the command without the console script)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import otelperf
from otelperf.cli import main
from otelperf.cli.run import build_run_env
from otelperf.testing import OTLPSink

SRC = Path(otelperf.__file__).resolve().parent.parent


def test_child_environment_puts_the_bootstrap_first_once_and_passes_the_options() -> None:
    env = build_run_env({"PYTHONPATH": "/app", "PATH": "/bin"}, {"service_name": "shop", "endpoint": None})
    bootstrap = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    assert (bootstrap / "sitecustomize.py").is_file()  # the file every child Python process runs
    assert env["PYTHONPATH"].split(os.pathsep)[1:] == ["/app"]
    assert env["OTELPERF_AUTO_INIT"] == "1" and env["OTELPERF_SERVICE_NAME"] == "shop"
    assert "OTELPERF_ENDPOINT" not in env
    # Nested `otelperf run` does not stack bootstrap dirs.
    assert build_run_env(env, {})["PYTHONPATH"] == env["PYTHONPATH"]


@pytest.mark.parametrize("argv", [["run"], ["run", "--"], ["run", "--service-name", "shop", "--"]])
def test_run_without_a_command_says_how(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "otelperf run: give the command to run, e.g. `otelperf run -- uvicorn app:app`\n"


def test_run_of_a_missing_command_is_127(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--", "no-such-command-xyz"]) == 127
    assert capsys.readouterr().err == "otelperf run: command not found: no-such-command-xyz\n"


def test_strict_run_refuses_a_bad_setting_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
    assert main(["run", "--strict", "--", "no-such-command-xyz"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("otelperf run: ") and "OTEL_EXPORTER_OTLP_PROTOCOL='thrift'" in err


@pytest.mark.slow
def test_python_m_otelperf_run_starts_otelperf_in_the_child() -> None:
    probe = (
        "import otelperf._runtime.setup as s; r = s.current(); "
        "print(r is not None and r.enabled, r.settings.service_name if r else None)"
    )
    with OTLPSink() as sink:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTEST_"))}
        env.update(PYTHONPATH=str(SRC), OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint)
        command = [sys.executable, "-m", "otelperf", "run", "--service-name", "shop", "--instrument", "none"]
        result = subprocess.run(
            [*command, "--", sys.executable, "-c", probe],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "shop"]


def test_python_m_otelperf_is_the_otelperf_command() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-m", "otelperf", "--version"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"otelperf {otelperf.__version__}\n"
