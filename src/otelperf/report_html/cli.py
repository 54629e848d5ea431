"""``otelperf report --html FILE``: the command's glue (arguments -> report file, errors -> exit 2)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from otelperf.budgets import BudgetError, load_budgets
from otelperf.report_html import collect_report
from otelperf.report_html.model import BaselineRoute
from otelperf.report_html.page import render
from otelperf.report_html.prom import (
    Prometheus,
    PrometheusQueryError,
    PrometheusUnreachable,
    Window,
    parse_time,
)
from otelperf.report_html.sources import BaselineError, load_baseline


def _fail(message: str) -> int:
    print(f"otelperf report: {message}", file=sys.stderr)
    return 2


def _window(args: argparse.Namespace) -> Window:
    if args.start:
        end = parse_time(args.end) if args.end else time.time()
        return Window.of(parse_time(args.start), end)
    if args.end:
        raise ValueError("--end needs --start (or use --since)")
    return Window.since(args.since)


def cmd_report_html(args: argparse.Namespace) -> int:
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
