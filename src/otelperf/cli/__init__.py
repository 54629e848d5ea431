"""The ``otelperf`` command: one module per subcommand, each with ``add_parser(sub)``.

otelperf run -- uvicorn app:app --workers 2    # instrument any Python command, no code change
otelperf report [--html FILE]                  # the findings ranked by the time they cost
otelperf trace TRACE_ID                        # a trace from Jaeger as a waterfall, findings marked
otelperf doctor                                # settings, libraries, is the collector reachable
otelperf stack up|down|status|logs             # the local collector + Jaeger + Prometheus
otelperf loadtest --scenario mixed             # a Locust scenario, the budgets as thresholds
otelperf baseline record|compare               # per-route baselines and the regression gate
otelperf budgets check [FILE]                  # validate the budgets file, print the budgets
otelperf generate rules|alertmanager|dashboards|all   # Prometheus/Alertmanager/Grafana from budgets

The command modules hold argument parsing and printing; the work is done by the libraries they
call (``otelperf.stack``, ``baseline``, ``loadtest``, ``generate``, ``report``...). The heavier
ones (the stack, the HTML report) are imported only when their command runs, so that
``otelperf run`` hands over to its command quickly. ``python -m otelperf`` is the same command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from otelperf._version import __version__
from otelperf.cli import baseline, budgets, doctor, generate, loadtest, report, run, stack, trace

__all__ = ["build_parser", "main"]

# In the order `otelperf --help` lists them.
COMMANDS = (run, report, trace, doctor, stack, loadtest, baseline, budgets, generate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelperf", description="Find performance bottlenecks with OpenTelemetry."
    )
    parser.add_argument("--version", action="version", version=f"otelperf {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result
