"""``otelperf run [OPTIONS] -- COMMAND``: run any Python command with otelperf in every process it starts.

The child gets a small ``sitecustomize`` (``otelperf/_runtime/bootstrap``) first on ``PYTHONPATH`` and
its settings as ``OTELPERF_*`` variables, then this process is replaced by it (``execve``), so
signals and exit codes are the command's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

_BOOTSTRAP_DIR = str(Path(__file__).resolve().parent.parent / "_runtime" / "bootstrap")

# `otelperf run` options that become OTELPERF_* variables for the child process.
_RUN_OPTIONS = {
    "service_name": "OTELPERF_SERVICE_NAME",
    "service_version": "OTELPERF_SERVICE_VERSION",
    "environment": "OTELPERF_ENVIRONMENT",
    "endpoint": "OTELPERF_ENDPOINT",
    "protocol": "OTELPERF_PROTOCOL",
    "instrument": "OTELPERF_INSTRUMENT",
}


def build_run_env(environ: dict[str, str], options: dict[str, str | None]) -> dict[str, str]:
    """The child's environment: our bootstrap dir first on PYTHONPATH, settings as OTELPERF_*."""
    env = dict(environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != _BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([_BOOTSTRAP_DIR, *parts])
    env["OTELPERF_AUTO_INIT"] = "1"
    for key, var in _RUN_OPTIONS.items():
        value = options.get(key)
        if value is not None:
            env[var] = value
    return env


def cmd_run(args: argparse.Namespace) -> int:
    command: list[str] = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "otelperf run: give the command to run, e.g. `otelperf run -- uvicorn app:app`", file=sys.stderr
        )
        return 2
    options = {key: getattr(args, key) for key in _RUN_OPTIONS}
    env = build_run_env(dict(os.environ), options)

    # Validate once here, where a person is looking, instead of once per worker process.
    from otelperf.config import ConfigError, resolve_settings

    try:
        resolve_settings(environ=env, strict=args.strict or None)
    except ConfigError as exc:
        print(f"otelperf run: {exc}", file=sys.stderr)
        return 2

    executable = shutil.which(command[0], path=env.get("PATH"))
    if executable is None:
        print(f"otelperf run: command not found: {command[0]}", file=sys.stderr)
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, command, env)
    return 0  # pragma: no cover - execve does not return


def add_parser(sub: Any) -> None:
    """Register ``otelperf run`` on the CLI's subparsers."""
    run = sub.add_parser(
        "run",
        help="run a Python command with otelperf enabled in it and in every worker process it starts",
        description="Run COMMAND with otelperf started in every Python process it starts (no code change).",
    )
    run.add_argument("--service-name")
    run.add_argument("--service-version")
    run.add_argument("--environment")
    run.add_argument("--endpoint", help="OTLP endpoint, e.g. http://127.0.0.1:4318")
    run.add_argument("--protocol", help="http/protobuf or grpc")
    run.add_argument("--instrument", help="'all', 'none' or a comma-separated list of libraries")
    run.add_argument("--strict", action="store_true", help="refuse to start on invalid configuration")
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    run.set_defaults(func=cmd_run)
