"""``otelperf report``: the findings ranked by the time they cost, or with ``--html FILE`` an
offline HTML report of a window (arguments -> report file, errors -> exit 2)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otelperf.report.html.prom import Window


def cmd_report(args: argparse.Namespace) -> int:
    from otelperf.report import format_ranked, ranked_from_prometheus

    if args.html:
        return cmd_report_html(args)
    try:
        rows = ranked_from_prometheus(
            args.prometheus,
            args.window,
            matchers=f'job="{args.service}"' if args.service else "",
            version=args.version,
            history=args.history,
        )
    except OSError as exc:
        print(
            f"otelperf report: cannot read {args.prometheus}: {exc} (is the backend up? `otelperf stack up`)",
            file=sys.stderr,
        )
        return 1
    print(f"findings of the last {args.window}, most time-consuming first (from {args.prometheus})")
    print(format_ranked(rows, args.limit))
    return 0


def _fail(message: str) -> int:
    print(f"otelperf report: {message}", file=sys.stderr)
    return 2


def _window(args: argparse.Namespace) -> Window:
    from otelperf.report.html.prom import Window, parse_time

    if args.start:
        end = parse_time(args.end) if args.end else time.time()
        return Window.of(parse_time(args.start), end)
    if args.end:
        raise ValueError("--end needs --start (or use --since)")
    return Window.since(args.since)


def cmd_report_html(args: argparse.Namespace) -> int:
    # The HTML report's modules load only when one is asked for.
    from otelperf.budgets import BudgetError, load_budgets
    from otelperf.report.html import collect_report
    from otelperf.report.html.model import BaselineRoute
    from otelperf.report.html.page import render
    from otelperf.report.html.prom import Prometheus, PrometheusQueryError, PrometheusUnreachable
    from otelperf.report.html.sources import BaselineError, load_baseline

    try:
        window = _window(args)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        budgets = load_budgets(args.budgets)
    except (BudgetError, OSError) as exc:
        return _fail(f"budgets: {exc}")
    baseline: dict[str, BaselineRoute] | None = None
    if args.baseline:
        try:
            baseline = load_baseline(args.baseline)
        except BaselineError as exc:
            return _fail(str(exc))
    service = args.service or budgets.service or ""
    try:
        data = collect_report(
            Prometheus(args.prometheus),
            window,
            service=service,
            jaeger=args.jaeger,
            budgets=budgets,
            baseline=baseline,
            baseline_source=args.baseline or "",
        )
    except PrometheusUnreachable as exc:
        return _fail(f"Prometheus unreachable: {exc} (is the backend up? `otelperf stack up`)")
    except PrometheusQueryError as exc:
        return _fail(f"Prometheus refused a query: {exc}")
    try:
        Path(args.html).write_text(render(data), encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot write {args.html}: {exc.strerror or exc}")
    over = sum(1 for r in data.routes if r.verdict == "over budget")
    print(
        f"wrote {args.html}: {len(data.routes)} routes ({over} over budget),"
        f" {len(data.findings)} kinds of findings,"
        f" {window.seconds / 60:.1f} min of {service or 'all services'}"
    )
    return 0


def add_parser(sub: Any) -> None:
    """Register ``otelperf report`` on the CLI's subparsers."""
    report = sub.add_parser("report", help="the detectors' findings, ranked by the time they cost")
    report.add_argument("--prometheus", default="http://127.0.0.1:9090")
    report.add_argument("--window", default="1h", help="PromQL range, e.g. 15m, 1h, 1d")
    report.add_argument("--limit", type=int, default=20)
    report.add_argument("--html", metavar="FILE", help="write an HTML report of the window to FILE")
    report.add_argument("--since", default="15m", help="--html: the window ending now (default 15m)")
    report.add_argument("--start", help="--html: window start (RFC 3339 or unix seconds), with --end")
    report.add_argument("--end", help="--html: window end (default now)")
    report.add_argument("--service", help="the service (Prometheus job); --html default: the budgets'")
    report.add_argument(
        "--version",
        help="the service.version whose findings are marked NEW/KNOWN/REGRESSED (default: the newest seen)",
    )
    report.add_argument(
        "--history", default="7d", help="how far back earlier versions' findings are looked for (default 7d)"
    )
    report.add_argument("--budgets", metavar="FILE", help="--html: budgets file (default: otelperf.toml)")
    report.add_argument("--baseline", metavar="FILE", help="--html: baseline JSON to compare against")
    report.add_argument("--jaeger", default="http://127.0.0.1:16686", help="--html: Jaeger UI/API base URL")
    report.set_defaults(func=cmd_report)
