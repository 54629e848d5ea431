"""Inline SVG line charts: time on x, a value on y, with axes, ticks, a legend and threshold lines.

No plotting library: the report must open offline and the package must not pull matplotlib. Every
text (titles, legend labels: route names are untrusted) is escaped. A gap in a series (None) breaks
its line; a point with no neighbour is drawn as a dot, so a one-point series is still visible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from otelperf.report.html.model import Series

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
BREACH_COLOR = "#d62728"
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Line:
    label: str
    points: Series
    color: str = PALETTE[0]


@dataclass(frozen=True)
class Threshold:
    """A horizontal line (a budget); points of the line labelled ``applies_to`` above it are marked."""

    label: str
    value: float
    applies_to: str | None = None
    color: str = BREACH_COLOR


@dataclass(frozen=True)
class Scale:
    """Maps a data interval onto a pixel interval (y pixels grow downwards: pass lo > hi)."""

    d0: float
    d1: float
    p0: float
    p1: float

    def __call__(self, value: float) -> float:
        if self.d1 == self.d0:
            return (self.p0 + self.p1) / 2
        return self.p0 + (value - self.d0) * (self.p1 - self.p0) / (self.d1 - self.d0)


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """0 .. a round number >= top, in steps of 1, 2 or 5 x 10^k (about ``count`` intervals)."""
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(n + 1)]


def time_ticks(start: float, end: float, count: int = 6) -> list[float]:
    """Round wall-clock instants inside [start, end] (every 10 s, 1 min, 5 min, ...)."""
    span = max(end - start, 1e-9)
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    return [float(t) for t in range(int(first), int(end) + 1, step)]


def fmt_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def fmt_time(t: float, step: float) -> str:
    return time.strftime("%H:%M:%S" if step < 60 else "%H:%M", time.gmtime(t))


def segments(points: Series) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known values; a None ends a run."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for t, v in points:
        if v is None or not math.isfinite(v):
            if current:
                runs.append(current)
            current = []
        else:
            current.append((t, v))
    if current:
        runs.append(current)
    return runs


def has_data(lines: Sequence[Line]) -> bool:
    return any(v is not None for line in lines for _, v in line.points)


def line_chart(
    lines: Sequence[Line],
    *,
    title: str,
    unit: str,
    start: float,
    end: float,
    thresholds: Sequence[Threshold] = (),
    width: int = 760,
    height: int = 260,
) -> str:
    """An ``<svg>`` element (string) with one polyline per line and a dashed line per threshold."""
    legend = _legend_layout(lines, thresholds, width)
    left, right, top = 62, 16, 28
    bottom = 44 + 16 * (max((row for row, _, _ in legend), default=0) + 1)
    height += bottom - 60
    values = [v for line in lines for _, v in line.points if v is not None and math.isfinite(v)]
    ceiling = max([*values, *(th.value for th in thresholds), 0.0])
    yticks = nice_ticks(ceiling * 1.05 if ceiling > 0 else 1.0)
    x = Scale(start, end, left, width - right)
    y = Scale(0.0, yticks[-1], height - bottom, top)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    out += _axes(
        x,
        y,
        yticks,
        unit,
        start=start,
        end=end,
        width=width,
        height=height,
        left=left,
        right=right,
        bottom=bottom,
    )
    if not values:
        out.append(
            f'<text x="{width / 2:.1f}" y="{(height - bottom + top) / 2:.1f}" text-anchor="middle" '
            f'class="no-data">no data in this window</text>'
        )
    for th in thresholds:
        py = y(th.value)
        out.append(
            f'<line class="threshold" x1="{left}" x2="{width - right}" y1="{py:.1f}" y2="{py:.1f}" '
            f'stroke="{escape(th.color)}" stroke-width="1.5" stroke-dasharray="6 4">'
            f"<title>{escape(th.label)}: {fmt_number(th.value)} {escape(unit)}</title></line>"
        )
    for line in lines:
        out += _line(line, x, y, unit)
    out += _breaches(lines, thresholds, x, y, unit)
    out += _legend(legend, height - bottom + 44)
    out.append("</svg>")
    return "\n".join(out)


def _axes(
    x: Scale,
    y: Scale,
    yticks: list[float],
    unit: str,
    *,
    start: float,
    end: float,
    width: int,
    height: int,
    left: int,
    right: int,
    bottom: int,
) -> list[str]:
    base = height - bottom
    out = [
        f'<line class="axis" x1="{left}" x2="{left}" y1="{y(yticks[-1]):.1f}" y2="{base}" stroke="#333"/>',
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" stroke="#333"/>',
        f'<text x="12" y="{(base + y(yticks[-1])) / 2:.1f}" class="axis-label" '
        f'transform="rotate(-90 12 {(base + y(yticks[-1])) / 2:.1f})" text-anchor="middle">'
        f"{escape(unit)}</text>",
    ]
    for tick in yticks:
        py = y(tick)
        out.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{py:.1f}" y2="{py:.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end" class="ytick">{fmt_number(tick)}</text>'
        )
    ticks = time_ticks(start, end)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else end - start
    for tick in ticks:
        px = x(tick)
        out.append(
            f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{base}" y2="{base + 5}" stroke="#333"/>'
            f'<text x="{px:.1f}" y="{base + 18}" text-anchor="middle" class="xtick">'
            f"{fmt_time(tick, step)}</text>"
        )
    out.append(
        f'<text x="{width - right}" y="{base + 32}" text-anchor="end" class="axis-label">time (UTC)</text>'
    )
    return out


def _line(line: Line, x: Scale, y: Scale, unit: str) -> list[str]:
    out = []
    color = escape(line.color)
    for run in segments(line.points):
        if len(run) == 1:
            t, v = run[0]
            out.append(
                f'<circle class="point" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                f"<title>{escape(line.label)}: {fmt_number(v)} {escape(unit)}</title></circle>"
            )
        else:
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            out.append(
                f'<polyline class="series" points="{coords}" fill="none" stroke="{color}" stroke-width="1.8">'
                f"<title>{escape(line.label)}</title></polyline>"
            )
    return out


def _breaches(
    lines: Sequence[Line], thresholds: Sequence[Threshold], x: Scale, y: Scale, unit: str
) -> list[str]:
    out = []
    for th in thresholds:
        for line in lines:
            if line.label != th.applies_to:
                continue
            for t, v in line.points:
                if v is not None and v > th.value:
                    out.append(
                        f'<circle class="breach" cx="{x(t):.1f}" cy="{y(v):.1f}" r="4" fill="none" '
                        f'stroke="{BREACH_COLOR}" stroke-width="2"><title>{escape(line.label)} '
                        f"{fmt_number(v)} {escape(unit)} over {escape(th.label)} "
                        f"({fmt_number(th.value)}) at {fmt_time(t, 1)}</title></circle>"
                    )
    return out


def _legend_layout(
    lines: Sequence[Line], thresholds: Sequence[Threshold], width: int
) -> list[tuple[int, float, tuple[str, str, bool]]]:
    """(row, x, (label, color, dashed)) per legend entry: rows wrap at the chart's width."""
    out = []
    row, px = 0, 62.0
    for entry in [
        *((ln.label, ln.color, False) for ln in lines),
        *((th.label, th.color, True) for th in thresholds),
    ]:
        w = 30 + 6.5 * min(len(entry[0]), 60)
        if px + w > width and px > 62:
            row, px = row + 1, 62.0
        out.append((row, px, entry))
        px += w
    return out


def _legend(layout: list[tuple[int, float, tuple[str, str, bool]]], top: int) -> list[str]:
    out = []
    for row, px, (label, color, dashed) in layout:
        py = top + 16 * row
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        shown = label if len(label) <= 60 else label[:59] + "\u2026"
        out.append(
            f'<g class="legend-item"><line x1="{px:.1f}" x2="{px + 18:.1f}" y1="{py - 4}" y2="{py - 4}" '
            f'stroke="{escape(color)}" stroke-width="2"{dash}/>'
            f'<text x="{px + 22:.1f}" y="{py}" class="legend">{escape(shown)}</text></g>'
        )
    return out
