"""The ``otelperf`` command.

otelperf run -- uvicorn app:app --workers 2    # instrument any Python command, no code change
otelperf doctor                                # settings, libraries, is the collector reachable
otelperf stack up|down|status|logs             # the local collector + Jaeger + Prometheus
otelperf budgets check [FILE]                  # validate the budgets file, print the budgets
otelperf generate rules|alertmanager|dashboards|all   # Prometheus/Alertmanager/Grafana from budgets
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from otelperf._version import __version__

_BOOTSTRAP_DIR = str(Path(__file__).resolve().parent / "_bootstrap")

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


def cmd_doctor(args: argparse.Namespace) -> int:
    from otelperf._doctor import run_doctor

    return run_doctor(timeout=args.timeout, as_json=args.json)


def cmd_stack(args: argparse.Namespace) -> int:
    from otelperf.stack.cli import run_stack_command

    return run_stack_command(args)


def _add_stack_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config-dir",
        help="otelperf checkout holding collector-config/, jaeger/, prometheus/ "
        "(default: this checkout; env OTELPERF_STACK_CONFIG_DIR)",
    )
    common.add_argument(
        "--state-dir",
        help="pids, logs and data (default ~/.cache/otelperf/state/stack; env OTELPERF_STACK_STATE)",
    )
    stack = sub.add_parser(
        "stack",
        help="run the local backend: collector, Jaeger, Prometheus",
        description="Start, stop and inspect the local OpenTelemetry Collector, Jaeger and Prometheus.",
    )
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", parents=[common], help="start the stack and wait until it is healthy")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for health (default 60)")
    alertmanager = up.add_mutually_exclusive_group()
    alertmanager.add_argument(
        "--with-alertmanager",
        action="store_const",
        const=True,
        default=None,
        help="also run Alertmanager on 127.0.0.1:9093 (default: when installed and configured)",
    )
    alertmanager.add_argument("--without-alertmanager", dest="with_alertmanager", action="store_false")
    up.add_argument(
        "--jaeger-storage", choices=["memory", "badger"], default="memory", help="badger keeps traces"
    )
    down = actions.add_parser("down", parents=[common], help="stop the processes `up` started")
    down.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL (default 10)")
    down.add_argument("--purge", action="store_true", help="also delete logs and stored data")
    status = actions.add_parser("status", parents=[common], help="what runs, its health, spans flowing")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--timeout", type=float, default=1.0, help="seconds per health probe")
    logs = actions.add_parser("logs", parents=[common], help="print (or follow) the components' logs")
    logs.add_argument("component", nargs="?", choices=["collector", "jaeger", "prometheus", "alertmanager"])
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines per log (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    stack.set_defaults(func=cmd_stack)


def cmd_report(args: argparse.Namespace) -> int:
    from otelperf.report import format_ranked, ranked_from_prometheus

    if args.html:
        from otelperf.report_html.cli import cmd_report_html

        return cmd_report_html(args)
    try:
        rows = ranked_from_prometheus(args.prometheus, args.window)
    except OSError as exc:
        print(
            f"otelperf report: cannot read {args.prometheus}: {exc} (is the backend up? `otelperf stack up`)",
            file=sys.stderr,
        )
        return 1
    print(f"findings of the last {args.window}, most time-consuming first (from {args.prometheus})")
    print(format_ranked(rows, args.limit))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelperf", description="Find performance bottlenecks with OpenTelemetry."
    )
    parser.add_argument("--version", action="version", version=f"otelperf {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")

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

    report = sub.add_parser("report", help="the detectors' findings, ranked by the time they cost")
    report.add_argument("--prometheus", default="http://127.0.0.1:9090")
    report.add_argument("--window", default="1h", help="PromQL range, e.g. 15m, 1h, 1d")
    report.add_argument("--limit", type=int, default=20)
    report.add_argument("--html", metavar="FILE", help="write an HTML report of the window to FILE")
    report.add_argument("--since", default="15m", help="--html: the window ending now (default 15m)")
    report.add_argument("--start", help="--html: window start (RFC 3339 or unix seconds), with --end")
    report.add_argument("--end", help="--html: window end (default now)")
    report.add_argument("--service", help="--html: the service (Prometheus job); default: the budgets'")
    report.add_argument("--budgets", metavar="FILE", help="--html: budgets file (default: otelperf.toml)")
    report.add_argument("--baseline", metavar="FILE", help="--html: baseline JSON to compare against")
    report.add_argument("--jaeger", default="http://127.0.0.1:16686", help="--html: Jaeger UI/API base URL")
    report.set_defaults(func=cmd_report)

    doctor = sub.add_parser(
        "doctor", help="print the resolved settings and libraries, and check the collector"
    )
    doctor.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the OTLP endpoint")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=cmd_doctor)
    _add_stack_parser(sub)
    from otelperf import baseline as _baseline
    from otelperf import loadtest as _loadtest

    _loadtest.add_parser(sub)
    _baseline.add_parser(sub)
    from otelperf import budgets as _budgets
    from otelperf import generate as _generate

    _budgets.add_parser(sub)
    _generate.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
