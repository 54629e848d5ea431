"""Flame graphs of over-budget routes: where their app time went, as inline SVG (no script).

Input: the folded stacks that the latency-budget detector puts on its finding event
(``otelperf.finding.app_profile.folded``: ``frame;frame;frame ms`` lines, root first, from the
profiler's samples of that request; see docs/detectors.md#where-app-time-goes). The report reads
them from Jaeger, one search per over-budget route, and adds up the requests it finds.

Drawing: the root at the bottom, each frame a box as wide as its share of the sampled time, its
children stacked on it; application frames in warm colours, libraries in grey-blue. Every box has a
``<title>`` (the tooltip: frame, milliseconds, share), so a box too narrow for its label still
tells what it is. Labels are clipped to their box and escaped (they come from a backend).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape

from otelperf import _names
from otelperf.backends import Jaeger
from otelperf.backends.jaeger import iter_events
from otelperf.report.html.model import RouteFlame

TRACES_PER_ROUTE = 100
WIDTH = 1000.0
ROW = 17.0
MAX_DEPTH = 64
MIN_BOX_PX = 0.5  # narrower boxes are left out (their time still counts in their parent)
_CHAR_PX = 6.6  # an average character at 11px, to clip labels to their box
_DETECTOR = "latency_budget"


def parse_folded(text: str) -> dict[str, float]:
    """``"a;b;c 12.5"`` lines into {stack: ms}; lines that do not parse are skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        stack, _, value = line.strip().rpartition(" ")
        try:
            ms = float(value)
        except ValueError:
            continue
        if stack and math.isfinite(ms) and ms > 0:
            out[stack] = out.get(stack, 0.0) + ms
    return out


def route_flames(
    jaeger: Jaeger, routes: Iterable[tuple[str, str]], start: float, end: float
) -> list[RouteFlame]:
    """One :class:`RouteFlame` per (service, route) with profiled latency-budget findings.

    Raises :class:`~otelperf.backends.BackendError` when Jaeger cannot be read."""
    flames: dict[str, RouteFlame] = {}
    for service, route in sorted(set(routes)):
        if not service:
            continue
        spans = jaeger.search_spans(service, operation=route, start=start, end=end, limit=TRACES_PER_ROUTE)
        for _, event in iter_events(spans, _names.FINDING_EVENT):
            if event.attributes.get(_names.FINDING_DETECTOR) != _DETECTOR:
                continue
            folded = event.attributes.get(_names.FINDING_APP_FOLDED)
            stacks = parse_folded(folded) if isinstance(folded, str) else {}
            if not stacks:
                continue
            flame = flames.setdefault(route, RouteFlame(route))
            flame.requests += 1
            for stack, ms in stacks.items():
                flame.stacks[stack] = flame.stacks.get(stack, 0.0) + ms
    return sorted(flames.values(), key=lambda f: -f.total_ms)


@dataclass
class _Node:
    name: str
    ms: float = 0.0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: Mapping[str, float]) -> _Node:
    root = _Node("all")
    for stack, ms in stacks.items():
        root.ms += ms
        node = root
        for frame in stack.split(";")[:MAX_DEPTH]:
            node = node.children.setdefault(frame, _Node(frame))
            node.ms += ms
    return root


def _depth(node: _Node) -> int:
    return 1 + max((_depth(c) for c in node.children.values()), default=0)


def _is_app(name: str) -> bool:
    return name.endswith(")") and ".py:" in name  # "compute_discount (pricing.py:88)"


def _color(name: str) -> str:
    # Stable per frame name, so one function keeps its colour across routes and reports.
    h = hashlib.blake2b(name.encode("utf-8", "replace"), digest_size=2).digest()
    if _is_app(name):
        return f"rgb({205 + h[0] % 50},{80 + h[1] % 110},{40 + h[0] % 40})"
    return f"rgb({150 + h[0] % 40},{165 + h[1] % 40},{190 + h[0] % 40})"


def flame_svg(stacks: Mapping[str, float], *, title: str, width: float = WIDTH) -> str:
    """A flame graph of ``stacks`` ({"frame;frame": ms}) as an inline ``<svg>`` element."""
    root = _tree(stacks)
    if root.ms <= 0:
        return (
            f'<svg class="flame" xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="40">'
            f'<text x="4" y="24" class="no-data">{escape(title)}: no samples</text></svg>'
        )
    depth = min(_depth(root), MAX_DEPTH + 1)
    top = 24.0
    height = top + depth * ROW + 4
    scale = width / root.ms
    out = [
        f'<svg class="flame" xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
        f'viewBox="0 0 {width:g} {height:g}" role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="15" class="chart-title">{escape(title)}</text>',
    ]

    def box(node: _Node, x: float, level: int) -> None:
        w = node.ms * scale
        if w < MIN_BOX_PX:
            return
        y = height - 4 - (level + 1) * ROW
        share = node.ms / root.ms * 100
        tip = f"{node.name}: {node.ms:,.1f} ms ({share:.1f}%)"
        label = node.name if level else f"all: {root.ms:,.0f} ms"
        fits = int((w - 6) / _CHAR_PX)
        text = label if len(label) <= fits else (label[: fits - 2] + ".." if fits > 3 else "")
        out.append(
            f'<g class="frame{" app" if _is_app(node.name) else ""}"><title>{escape(tip)}</title>'
            f'<rect x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{ROW - 1:g}" rx="2" '
            f'fill="{"#e0e0e0" if not level else _color(node.name)}"/>'
            + (f'<text x="{x + 3:.2f}" y="{y + ROW - 5:.1f}">{escape(text)}</text>' if text else "")
            + "</g>"
        )
        child_x = x
        for child in sorted(node.children.values(), key=lambda c: -c.ms):
            box(child, child_x, level + 1)
            child_x += child.ms * scale

    box(root, 0.0, 0)
    out.append("</svg>")
    return "".join(out)


def section(flames: list[RouteFlame]) -> str:
    """The report's "where app time goes" section: one flame graph per over-budget route."""
    if not flames:
        return (
            '<p class="empty">No profiled over-budget requests in this window (the latency-budget '
            "findings carry the profiler's stacks when <code>OTELPERF_PROFILER</code> is on).</p>"
        )
    out = [
        '<p class="muted">Sampled app time of the over-budget requests found in Jaeger, per route: '
        "each box is a function (warm) or a run of library frames (grey), as wide as its share; "
        "hover a box for its milliseconds.</p>"
    ]
    for flame in flames:
        title = f"{flame.route}: {flame.total_ms:,.0f} ms sampled in {flame.requests} over-budget requests"
        out.append(flame_svg(flame.stacks, title=title))
    return "\n".join(out)
