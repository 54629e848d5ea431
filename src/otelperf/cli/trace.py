"""``otelperf trace TRACE_ID``: a trace from Jaeger's API as a waterfall in the terminal.

One line per span (repeated siblings folded into "x N" lines, see :mod:`otelperf.report.waterfall`):
the name indented by depth, a bar on the trace's timeline scaled to the terminal's width, the
duration, the component, and for the spans a finding concerns a ``!`` in the margin and their call
site (an ``E`` in the margin: the span's status is ERROR); each finding's hint is printed under its
spans. Colour only on a terminal, without
``NO_COLOR`` and ``--no-color``.

Trace ids: 32 hex digits; 16 hex digits (a 64-bit id, as older tracers write) are padded with
zeros on the left, as Jaeger stores them. Exit 0 shown, 1 no such trace in Jaeger, 2 malformed id
or Jaeger not readable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from otelperf.backends.jaeger import JAEGER_URL
from otelperf.report.waterfall import Row, Waterfall, build, format_duration

__all__ = ["format_waterfall", "normalize_trace_id"]

MIN_WIDTH = 40
_HEX = frozenset("0123456789abcdef")
_COLORS = {"db": "34", "cache": "35", "http": "33", "app": "32"}  # ANSI: blue, magenta, yellow, green
_RED = "1;31"


def normalize_trace_id(text: str) -> str:
    """32 lower-case hex digits; ValueError says what a trace id looks like."""
    value = text.strip().lower()
    if len(value) == 16 and _HEX.issuperset(value):
        value = value.rjust(32, "0")
    if len(value) != 32 or not _HEX.issuperset(value) or value == "0" * 32:
        raise ValueError(f"malformed trace id {text!r}: expected 32 hex digits (or 16, padded with zeros)")
    return value


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code and text else text


def _cut(text: str, n: int, ellipsis: str) -> str:
    if n <= 0:
        return ""
    return text if len(text) <= n else text[: max(n - len(ellipsis), 0)] + ellipsis[:n]


def _bar(start: float, share: float, width: int, full: str) -> str:
    """``width`` cells, filled from ``start`` for ``share`` of them (at least one cell)."""
    first = min(int(start * width), width - 1)
    cells = max(1, round(share * width))
    cells = min(cells, width - first)
    return " " * first + full * cells + " " * (width - first - cells)


def format_waterfall(waterfall: Waterfall, *, width: int, color: bool, unicode: bool = True) -> list[str]:
    """The lines to print, none wider than ``width`` characters (colour codes aside)."""
    width = max(width, MIN_WIDTH)
    full, fold, ellipsis = ("\u2588", "\u2592", "\u2026") if unicode else ("#", "=", "~")
    sites = [r.call_site.short() for r in waterfall.rows if r.offending and r.call_site is not None]
    name_w = min(max(width // 4, 12), 40)
    right_fixed = 1 + 10 + 1 + 5  # " 12,345.6 ms db   "
    site_w = min(max((len(s) for s in sites), default=0), width * 3 // 10)
    bar_w = width - 2 - name_w - 1 - right_fixed - (1 + site_w if site_w else 0)
    if bar_w < 10:
        site_w = max(site_w - (10 - bar_w), 0)
        bar_w = width - 2 - name_w - 1 - right_fixed - (1 + site_w if site_w else 0)
    folded = sum(r.count for r in waterfall.rows if r.kind != "span")
    took = format_duration(waterfall.duration_ms)
    head = f"trace {waterfall.trace_id}  {took}  {waterfall.span_count:,} spans"
    if folded:
        head += f" ({folded:,} folded)"
    if waterfall.findings:
        head += f"  {len(waterfall.findings)} finding" + ("s" if len(waterfall.findings) > 1 else "")
    lines = [_cut(head, width, ellipsis)]
    end_label = format_duration(waterfall.duration_ms)
    axis = "0 ms".ljust(bar_w - len(end_label)) + end_label if bar_w > len(end_label) + 5 else ""
    lines.append((" " * (2 + name_w + 1) + axis).rstrip())
    for row in waterfall.rows:
        lines.append(
            _line(
                row,
                waterfall,
                name_w=name_w,
                bar_w=bar_w,
                site_w=site_w,
                color=color,
                chars=(full, fold, ellipsis),
            )
        )
        for mark in row.findings:
            indent = " " * min(2 + 2 * (row.depth + 1), width // 3)
            site = f" at {mark.call_site.short()}" if mark.call_site is not None else ""
            text = f"{indent}\u21b3 " if unicode else f"{indent}-> "
            text += f"{mark.detector} [{mark.severity}] x{mark.count} ({mark.duration_ms:,.1f} ms){site}"
            text += f": {mark.hint}"
            lines.append(_paint(_cut(text, width, ellipsis), _RED, color))
    return lines


def _line(
    row: Row,
    waterfall: Waterfall,
    *,
    name_w: int,
    bar_w: int,
    site_w: int,
    color: bool,
    chars: tuple[str, str, str],
) -> str:
    full, fold, ellipsis = chars
    indent = "  " * min(row.depth, name_w // 4)
    label = row.name
    if row.kind == "fold":
        label = f"{row.name} x{row.count}"
    elif row.kind == "more":
        label = f"{ellipsis} {row.name}"
    name = _cut(indent + label, name_w, ellipsis).ljust(name_w)
    start, share = waterfall.fraction(row)
    bar = _bar(start, share, bar_w, full if row.kind == "span" else fold)
    duration = format_duration(row.busy_ms if row.kind == "fold" else row.duration_ms).rjust(10)
    component = row.component.ljust(5)
    # "!" a finding concerns the span, "E" its status is ERROR: in the margin, never cut.
    margin = ("!" if row.offending else " ") + ("E" if row.error else " ")
    code = _RED if row.offending else _COLORS.get(row.component, "")
    line = _paint(margin, _RED, color) + _paint(name, _RED if row.offending else "", color) + " "
    line += _paint(bar, code, color) + " " + duration + " " + component
    if site_w and row.offending and row.call_site is not None:
        line += " " + _cut(row.call_site.short(), site_w, ellipsis)
    return line.rstrip()


def _use_color(args: argparse.Namespace) -> bool:
    if args.no_color or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _can_encode(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _fail(message: str, code: int) -> int:
    print(f"otelperf trace: {message}", file=sys.stderr)
    return code


def cmd_trace(args: argparse.Namespace) -> int:
    from otelperf.backends import BackendError, BackendUnreachable, Jaeger

    try:
        trace_id = normalize_trace_id(args.trace_id)
    except ValueError as exc:
        return _fail(str(exc), 2)
    if args.width is not None and args.width < MIN_WIDTH:
        return _fail(f"--width must be at least {MIN_WIDTH}", 2)
    if args.max_rows < 1:
        return _fail("--max-rows must be at least 1", 2)
    jaeger = Jaeger(args.jaeger, timeout=args.timeout)
    try:
        trace = jaeger.trace(trace_id)
    except BackendUnreachable as exc:
        return _fail(
            f"cannot reach Jaeger at {jaeger.url}: {exc} (is the backend up? `otelperf stack up`)", 2
        )
    except BackendError as exc:
        return _fail(f"Jaeger at {jaeger.url} did not answer with the trace: {exc}", 2)
    if not trace.spans:
        return _fail(
            f"no trace {trace_id} in Jaeger at {jaeger.url} (unknown id, not stored yet, or gone)", 1
        )
    waterfall = build(trace, max_rows=args.max_rows)
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    unicode = _can_encode("\u2588\u2592\u2026\u21b3")
    for line in format_waterfall(waterfall, width=width, color=_use_color(args), unicode=unicode):
        print(line)
    return 0


def add_parser(sub: Any) -> None:
    """Register ``otelperf trace`` on the CLI's subparsers."""
    trace = sub.add_parser("trace", help="a trace from Jaeger as a waterfall, findings marked")
    trace.add_argument("trace_id", metavar="TRACE_ID", help="32 hex digits (16 are padded with zeros)")
    trace.add_argument("--jaeger", default=JAEGER_URL, help=f"Jaeger query base URL (default {JAEGER_URL})")
    trace.add_argument("--width", type=int, help="columns (default: the terminal's)")
    trace.add_argument("--no-color", action="store_true", help="no ANSI colours (also: NO_COLOR, not a tty)")
    trace.add_argument("--max-rows", type=int, default=200, help="rows before the rest fold (default 200)")
    trace.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Jaeger (default 10)")
    trace.set_defaults(func=cmd_trace)
