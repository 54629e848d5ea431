"""``otelperf loadtest``: one Locust scenario, headless, with the budgets as thresholds.

otelperf loadtest --scenario crud --duration 30s --users 10 --host http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
from typing import Any

from otelperf.loadtest.runner import SCENARIOS, LoadOptions, LoadTestError, parse_duration, run_load


def add_load_arguments(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """The options that shape a load run (shared with ``otelperf baseline``, whose defaults come
    from the baseline file: ``defaults=False`` leaves them None)."""
    parser.add_argument(
        "--scenario",
        default="mixed" if defaults else None,
        choices=SCENARIOS,
        help="scenario of examples/loadtest (default mixed)",
    )
    parser.add_argument(
        "--duration", default="30s" if defaults else None, help="how long to run: 10s, 2m, ... (default 30s)"
    )
    parser.add_argument("--users", type=int, help="concurrent users (default: the scenario's)")
    parser.add_argument("--spawn-rate", type=float, help="users started per second (default users/2)")
    parser.add_argument(
        "--host", default="http://127.0.0.1:8000" if defaults else None, help="the service under test"
    )
    parser.add_argument("--budgets", help="budgets file (default: otelperf.toml found from here)")
    parser.add_argument("--locustfile", help="your own locustfile instead of the scenario's")
    parser.add_argument("--otlp-endpoint", help="collector OTLP/HTTP endpoint (default 127.0.0.1:4318)")
    parser.add_argument(
        "--no-throughput-check", action="store_true", help="do not hold the run to the throughput floors"
    )


def load_options(args: argparse.Namespace) -> LoadOptions:
    return LoadOptions(
        scenario=args.scenario,
        duration_s=parse_duration(args.duration),
        users=args.users,
        spawn_rate=args.spawn_rate,
        host=args.host,
        budgets=args.budgets,
        locustfile=args.locustfile,
        otlp_endpoint=args.otlp_endpoint,
        check_throughput=not args.no_throughput_check,
    )


def cmd_loadtest(args: argparse.Namespace) -> int:
    try:
        options = load_options(args)
        print(
            f"otelperf loadtest: scenario {options.scenario}, {options.users_or_default()} users, "
            f"{options.duration_s:g} s against {options.host}",
            flush=True,
        )
        run = run_load(options)
    except LoadTestError as exc:
        print(f"otelperf loadtest: {exc}")
        return 2
    if run.exit_code == 0:
        print("otelperf loadtest: all budget thresholds passed")
    elif run.exit_code == 1 and run.summary:
        failed = [c for c in run.summary.get("checks", []) if not c.get("passed")]
        print(f"otelperf loadtest: {len(failed)} budget threshold(s) breached")
    else:
        print(f"otelperf loadtest: Locust exited with {run.exit_code}")
    return run.exit_code


def add_parser(sub: Any) -> None:
    """Register ``otelperf loadtest`` on the CLI's subparsers."""
    parser = sub.add_parser(
        "loadtest",
        help="run a Locust scenario against the service, budgets as thresholds",
        description="Run one of the Locust scenarios of examples/loadtest headless. Exits 1 when a "
        "route breaks its budget (p95, p99, error rate, throughput floor).",
    )
    add_load_arguments(parser)
    parser.set_defaults(func=cmd_loadtest)
