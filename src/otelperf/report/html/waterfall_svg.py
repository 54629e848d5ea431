"""A trace's waterfall as inline SVG (no script): one row per span, bars on the trace's timeline.

The layout is :mod:`otelperf.report.waterfall`'s. Bars are coloured by component; the spans a
finding concerns are drawn red with a thick outline and their call site written next to the bar;
each finding's hint is a line under the span that carries it. Every row has a ``<title>``
(the browser's tooltip): name, timing, component, statement, call site. All text is escaped:
span names and statements come from the traced app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from otelperf.backends.jaeger import Trace
from otelperf.report.html.model import Finding
from otelperf.report.waterfall import FindingMark, Row, Waterfall, build, format_duration

__all__ = ["COLORS", "finding_waterfalls", "waterfall_svg"]

COLORS = {"db": "#1f77b4", "cache": "#9467bd", "http": "#ff7f0e", "app": "#2ca02c"}
OFFENDING = "#d62728"
ROW_H = 18
HINT_H = 16
LABEL_W = 300  # the span names column
INDENT = 12
AXIS_H = 22
_MAX_LABEL = 46  # characters of a name before it is cut (the full name is in the tooltip)
_CHAR_W = 6.7  # px per character of 11 px text, for placing labels (monospace; proportional is narrower)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _tooltip(row: Row, waterfall: Waterfall) -> str:
    lines = [row.name if row.kind != "fold" else f"{row.name} \u00d7 {row.count}"]
    if row.kind == "fold":
        busy, over = format_duration(row.busy_ms), format_duration(row.duration_ms)
        lines.append(f"{row.count} spans, {busy} in all, over {over}")
    else:
        lines.append(f"{format_duration(row.duration_ms)} at +{format_duration(row.offset_ms)}")
    lines.append(f"component: {row.component}" + (f", service: {row.service}" if row.service else ""))
    if row.statement:
        lines.append(row.statement)
    if row.call_site is not None:
        lines.append(f"called from {row.call_site}")
    if row.error:
        lines.append("status: ERROR")
    if row.offending:
        lines.append("a finding concerns this span")
    lines += [f"{m.headline()} \u2014 {m.hint}" for m in row.findings]
    if row.span_id:
        lines.append(f"span {row.span_id} of trace {waterfall.trace_id}")
    return "\n".join(lines)


def _label(row: Row) -> str:
    if row.kind == "fold":
        return f"{row.name} \u00d7 {row.count}"
    if row.kind == "more":
        return f"\u2026 {row.name}"
    return row.name


def waterfall_svg(waterfall: Waterfall, *, width: int = 1040, title: str = "") -> str:
    """The SVG element (a string); ``title`` is its accessible name and caption line."""
    bar_x = LABEL_W + 8
    bar_w = max(width - bar_x - 90, 100)  # room on the right for the duration
    heights = [ROW_H + HINT_H * len(r.findings) for r in waterfall.rows]
    top = AXIS_H + (18 if title else 0)
    height = top + sum(heights) + 8
    out = [
        f'<svg class="waterfall" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "trace waterfall")}">',
    ]
    if title:
        out.append(
            f'<text class="chart-title" font-size="13" font-weight="bold" x="0" y="13">{escape(title)}</text>'
        )
    # Time axis: five ticks over the trace's length.
    axis_y = top - 6
    for i in range(5):
        x = bar_x + bar_w * i / 4
        out.append(
            f'<line class="tick" x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{height - 4}" stroke="#eee"/>'
            f'<text class="xtick" font-size="11" x="{x:.1f}" y="{axis_y - 3}" text-anchor="middle">'
            f"{escape(format_duration(waterfall.duration_ms * i / 4))}</text>"
        )
    y = top
    for row, h in zip(waterfall.rows, heights, strict=True):
        out.append(_row(row, waterfall, y, bar_x, bar_w))
        for j, mark in enumerate(row.findings):
            hy = y + ROW_H + HINT_H * j + 12
            site = f" at {mark.call_site.short()}" if mark.call_site is not None else ""
            text = (
                f"\u21b3 {mark.detector} \u00d7{mark.count} ({mark.duration_ms:,.1f} ms){site}: {mark.hint}"
            )
            out.append(
                f'<text class="hint" font-size="11" x="{INDENT * (row.depth + 1)}" y="{hy}" '
                f'fill="{OFFENDING}">'
                f"{escape(_cut(text, 170))}</text>"
            )
        y += h
    out.append("</svg>")
    return "\n".join(out)


def _row(row: Row, waterfall: Waterfall, y: int, bar_x: int, bar_w: int) -> str:
    start, share = waterfall.fraction(row)
    x = bar_x + start * bar_w
    w = max(share * bar_w, 1.5)  # a 0.01 ms span is still visible
    color = OFFENDING if row.offending else COLORS.get(row.component, COLORS["app"])
    classes = ["span", row.kind, row.component] + (["offending"] if row.offending else [])
    if row.error:
        classes.append("error")
    parts = [f'<g class="{" ".join(classes)}"><title>{escape(_tooltip(row, waterfall))}</title>']
    if row.offending:
        parts.append(f'<rect x="0" y="{y}" width="{bar_x + bar_w}" height="{ROW_H}" fill="#fdecea"/>')
    label_x = 4 + INDENT * min(row.depth, 20)
    weight = ' font-weight="bold"' if row.offending or row.findings else ""
    parts.append(
        f'<text class="name" x="{label_x}" y="{y + 13}" font-size="12"{weight}>'
        f"{escape(_cut(_label(row), _MAX_LABEL - min(row.depth, 20)))}</text>"
    )
    stroke = f' stroke="{OFFENDING}" stroke-width="2"' if row.offending else ""
    dash = ' stroke-dasharray="3 2" fill-opacity="0.5"' if row.kind in ("fold", "more") else ""
    parts.append(
        f'<rect class="bar" x="{x:.2f}" y="{y + 3}" width="{w:.2f}" height="{ROW_H - 6}" rx="2" '
        f'fill="{color}"{stroke}{dash}/>'
    )
    after = format_duration(row.duration_ms)
    if row.kind == "fold":
        after = f"\u00d7{row.count}, {format_duration(row.busy_ms)}"
    if row.offending and row.call_site is not None:
        after += f"  {row.call_site.short()}"
    # The duration (and call site) after the bar; before it when it would run past the right
    # edge; inside a bar that leaves room on neither side. Widths are estimated (11 px text).
    after = _cut(after, 80)
    room = len(after) * _CHAR_W
    right_edge = bar_x + bar_w + 86
    end, anchor, fill = x + w + 4, "start", "#333"
    if end + room > right_edge:
        if x - room - 4 >= bar_x:
            end, anchor = x - 4, "end"
        elif w >= room + 8:
            end, anchor, fill = x + w - 4, "end", "#fff"
        else:  # neither: as much as fits after the bar
            after = _cut(after, max(int((right_edge - end) / _CHAR_W), 4))
    parts.append(
        f'<text class="duration" x="{end:.1f}" y="{y + 13}" font-size="11" text-anchor="{anchor}" '
        f'fill="{fill}">'
        f"{escape(after)}</text>"
    )
    parts.append("</g>")
    return "".join(parts)


MAX_WATERFALLS = 12  # per report: each is up to waterfall.MAX_ROWS rows


def finding_waterfalls(findings: Sequence[Finding], traces: Mapping[str, Trace], budget: list[int]) -> str:
    """HTML: the waterfall of each finding's first example trace that the report holds, with
    that finding's spans highlighted. ``budget`` is ``[waterfalls left]`` for the whole page."""
    out = []
    for f in findings:
        trace = next((traces[t] for t in f.trace_ids if t in traces), None)
        if trace is None or not trace.spans or budget[0] <= 0:
            continue

        def focus(mark: FindingMark, f: Finding = f) -> bool:
            return mark.detector == f.detector and (mark.fingerprint == f.fingerprint or not f.fingerprint)

        waterfall = build(trace, focus=focus)
        if not any(focus(m) for m in waterfall.findings):
            continue  # the example holds another finding of the route: no waterfall for this one
        budget[0] -= 1
        caption = f"{f.detector}: {f.route} \u2014 {f.statement}"
        figure = waterfall_svg(waterfall, title=f"trace {trace.trace_id} ({waterfall.duration_ms:,.1f} ms)")
        out.append(
            f'<figure class="waterfall" data-trace-id="{escape(trace.trace_id)}">'
            f"<figcaption>{escape(caption)}</figcaption>\n{figure}\n</figure>"
        )
    return "\n".join(out)
