"""``otelperf budgets check [FILE]``: validate the budgets file and print what it resolves to."""

from __future__ import annotations

import sys
from typing import Any

from otelperf.budgets.load import load_budgets
from otelperf.budgets.model import DEFAULT_ROUTE, BudgetError, Budgets

__all__ = ["add_parser", "format_budgets"]


def format_budgets(budgets: Budgets) -> str:
    """The resolved budgets as a readable table (what ``otelperf budgets check`` prints)."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:g} ms"

    lines = [
        f"budgets from {budgets.source or '(built-in defaults: no otelperf.toml or [tool.otelperf] found)'}",
        f"service: {budgets.service or '(any: rules match every job)'}",
        f"{'route':<40} {'p95':>9} {'p99':>9} {'errors':>7} {'min rps':>8}",
    ]
    for r in budgets.routes:
        rps = "-" if r.min_rps is None else f"{r.min_rps:g}"
        name = "* (default; min rps = whole service)" if r.route == DEFAULT_ROUTE else r.route
        lines.append(f"{name:<40} {ms(r.p95_ms):>9} {ms(r.p99_ms):>9} {r.error_rate:>7.2%} {rps:>8}")
    lines += [
        f"db: avg query <= {budgets.db_avg_query_ms:g} ms, max query <= {budgets.db_max_query_ms:g} ms, "
        f"pool use <= {budgets.pool_max_utilization:.0%}",
        f"cache: hit ratio >= {budgets.cache_min_hit_ratio:.0%}",
        f"slo: {budgets.slo_target:.3%} over {budgets.slo_window_days} days",
        f"alerts fire after {budgets.alert_for_s:g} s over budget",
    ]
    return "\n".join(lines)


def _cmd_budgets(args: Any) -> int:
    try:
        budgets = load_budgets(args.file)
    except BudgetError as exc:
        print(f"otelperf budgets: {exc}", file=sys.stderr)
        return 1
    print(format_budgets(budgets))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``otelperf budgets check [FILE]`` on the CLI's subparsers."""
    budgets = sub.add_parser(
        "budgets",
        help="validate the budgets file and print the resolved budgets",
        description="Performance budgets (otelperf.toml or [tool.otelperf] in pyproject.toml).",
    )
    actions = budgets.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate FILE (default: the one found from the cwd up)")
    check.add_argument("file", nargs="?", help="otelperf.toml or pyproject.toml")
    budgets.set_defaults(func=_cmd_budgets)
