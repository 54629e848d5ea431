"""A trace as a waterfall: one row per span, in the order a reader follows the request.

The layout is plain data, drawn twice: as inline SVG in the HTML report
(:mod:`otelperf.report.html.waterfall_svg`) and as text in the terminal (``otelperf trace``).

- Rows go depth first, children by start time; ``depth`` is the indentation.
- ``offset_ms`` / ``duration_ms`` are relative to the trace's first start; ``fraction()`` gives
  both as shares of the trace's length, for a bar of any width.
- ``component`` follows the detectors' rule (``otelperf.detectors._api.component_of``), written
  again here for spans read back from Jaeger: the ``otelperf.component`` attribute, else a SERVER
  span is app, a cache name or Redis is cache, another database system is db, a CLIENT span with
  an HTTP method is http, anything else app.
- Findings are the ``otelperf.finding`` events of the trace. A finding's spans are the ids its
  event lists (``otelperf.finding.span_ids``) when it lists them; otherwise they are worked out
  from where the event sits: an N+1's event is on the parent of the repeats, so its spans are the
  most repeated same-statement descendants of that span; any other finding's event sits on the
  span it concerns.
- The call site of a span is its ``code.file.path`` / ``code.line.number`` / ``code.function.name``.
- Bounded: past ``fold_after`` siblings of one shape (same name and statement) under one parent,
  the rest of them (and their subtrees) become one "x N" row; past ``max_rows`` rows, the rest
  become one "N more spans" row, except the rows a finding concerns, which are always kept.

    >>> waterfall = build(jaeger.trace(trace_id))  # doctest: +SKIP
    >>> [(r.depth, r.name, r.offending) for r in waterfall.rows][:3]  # doctest: +SKIP
    [(0, 'GET /orders', False), (1, 'SELECT shop', False), (1, 'SELECT shop', True)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from otelperf import _names
from otelperf.backends.jaeger import Span, SpanKind, Trace

__all__ = [
    "CODE_FILE_PATH",
    "CODE_FUNCTION_NAME",
    "CODE_LINE_NUMBER",
    "CallSite",
    "FindingMark",
    "Row",
    "Waterfall",
    "build",
    "component_of",
    "format_duration",
]

# Semantic conventions for call sites (and the names older instrumentations used).
CODE_FILE_PATH, CODE_LINE_NUMBER, CODE_FUNCTION_NAME = (
    "code.file.path",
    "code.line.number",
    "code.function.name",
)
_LEGACY_CODE = ("code.filepath", "code.lineno", "code.function")

FOLD_AFTER = 5  # siblings of one shape shown before the rest fold into "x N"
MAX_ROWS = 200  # rows of one waterfall before the rest fold into "N more spans"

Component = Literal["db", "cache", "http", "app"]
RowKind = Literal["span", "fold", "more"]
_NAMED = frozenset(("db", "cache", "http"))


@dataclass(frozen=True)
class CallSite:
    path: str
    line: int | None
    function: str

    @classmethod
    def of(cls, attributes: Mapping[str, Any]) -> CallSite | None:
        path = attributes.get(CODE_FILE_PATH, attributes.get(_LEGACY_CODE[0]))
        line = attributes.get(CODE_LINE_NUMBER, attributes.get(_LEGACY_CODE[1]))
        function = attributes.get(CODE_FUNCTION_NAME, attributes.get(_LEGACY_CODE[2]))
        if not path and not function:
            return None
        try:
            number = int(line) if line is not None else None
        except (TypeError, ValueError):
            number = None
        return cls(str(path or ""), number, str(function or ""))

    def short(self) -> str:
        """``app/routes.py:42 list_orders()``: the last two parts of the path, for a label."""
        where = "/".join(self.path.replace("\\", "/").split("/")[-2:])
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.function:
            where = f"{where} {self.function}()".strip()
        return where

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line is not None else "")
        return f"{where} {self.function}()".strip() if self.function else where


@dataclass(frozen=True)
class FindingMark:
    """One ``otelperf.finding`` event of the trace, and the spans it concerns."""

    detector: str
    severity: str
    statement: str
    hint: str
    fingerprint: str
    count: int
    duration_ms: float
    anchor_span_id: str  # the span carrying the event
    span_ids: frozenset[str]  # the spans it concerns (highlighted)
    call_site: CallSite | None = None

    def headline(self) -> str:
        return (
            f"{self.detector} [{self.severity}] x{self.count} ({self.duration_ms:,.1f} ms): {self.statement}"
        )


@dataclass(frozen=True)
class Row:
    """A span, a fold of ``count`` same-shape siblings ("x N"), or the rest past the row limit."""

    kind: RowKind
    name: str
    depth: int
    offset_ms: float  # from the trace's start
    duration_ms: float  # of the span; of a fold: from its first start to its last end
    component: Component
    span_id: str = ""
    parent_span_id: str = ""
    service: str = ""
    count: int = 1  # spans this row stands for (its subtree's folded spans not included)
    busy_ms: float = 0.0  # of a fold: the sum of its spans' durations
    error: bool = False
    offending: bool = False  # a focused finding concerns it (or, for a fold, one of its spans)
    call_site: CallSite | None = None
    findings: tuple[FindingMark, ...] = ()  # focused findings told under this row (see build)
    statement: str = ""
    folded_ids: frozenset[str] = frozenset()  # of a fold: the ids of its spans


@dataclass(frozen=True)
class Waterfall:
    trace_id: str
    duration_ms: float  # first start to last end
    rows: tuple[Row, ...]
    span_count: int
    findings: tuple[FindingMark, ...]  # every finding of the trace, focused or not

    def fraction(self, row: Row) -> tuple[float, float]:
        """``(start, width)`` of the row's bar as shares of the trace's length (0..1)."""
        if self.duration_ms <= 0:
            return 0.0, 1.0
        start = min(max(row.offset_ms / self.duration_ms, 0.0), 1.0)
        return start, min(max(row.duration_ms / self.duration_ms, 0.0), 1.0 - start)

    @property
    def offending_rows(self) -> list[Row]:
        return [r for r in self.rows if r.offending]


def format_duration(ms: float) -> str:
    """``0.42 ms``, ``12.5 ms``, ``1.25 s``: both renderers label durations this way."""
    if ms >= 1000:
        return f"{ms / 1000:,.2f} s" if ms < 10_000 else f"{ms / 1000:,.1f} s"
    return f"{ms:.2f} ms" if ms < 9.995 else f"{ms:.1f} ms"  # no "10.00 ms"


def component_of(span: Span) -> Component:
    """db | cache | http | app, by the detectors' rule (see the module docstring)."""
    attributes = span.attributes
    named = attributes.get(_names.COMPONENT)
    if isinstance(named, str) and named in _NAMED:
        return named  # type: ignore[return-value]
    if span.kind == SpanKind.SERVER:
        return "app"
    if attributes.get(_names.CACHE_NAME) is not None:
        return "cache"
    system = attributes.get(_names.DB_SYSTEM_NAME)
    if system is not None:
        return "cache" if system == "redis" else "db"
    if span.kind == SpanKind.CLIENT and attributes.get(_names.HTTP_REQUEST_METHOD) is not None:
        return "http"
    return "app"


def statement_of(span: Span) -> str:
    """What a span ran, as exported (already sanitized by otelperf): SQL text or Redis command."""
    for key in (_names.DB_QUERY_TEXT, _names.DB_STATEMENT_LEGACY, _names.DB_OPERATION_NAME):
        value = span.attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _shape(span: Span) -> tuple[str, str]:
    return span.name, statement_of(span)


# --- findings --------------------------------------------------------------------------------


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _descendants(span_id: str, children: Mapping[str, Sequence[Span]]) -> list[Span]:
    out: list[Span] = []
    stack = list(children.get(span_id, ()))
    seen: set[str] = set()
    while stack:
        span = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        out.append(span)
        stack.extend(children.get(span.span_id, ()))
    return out


def _repeats_under(
    anchor: Span, count: int, statement: str, children: Mapping[str, Sequence[Span]]
) -> frozenset[str]:
    """An N+1 event without span ids: the anchor's descendants of the finding's statement, else of
    the shape repeated most nearly ``count`` times (the detector grouped one statement under one
    or more parents)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for span in _descendants(anchor.span_id, children):
        component = component_of(span)
        if component != "app":
            groups.setdefault((component, *_shape(span)), []).append(span.span_id)
    repeated = [(key, ids) for key, ids in groups.items() if len(ids) >= 2]
    if not repeated:
        return frozenset()
    same: list[list[str]] = [ids for key, ids in repeated if statement and key[2] == statement]
    if same:
        most: list[str] = max(same, key=len)
        return frozenset(most)
    best = min(repeated, key=lambda item: (abs(len(item[1]) - count), -len(item[1]), item[0]))
    return frozenset(best[1])


def findings_of(trace: Trace, children: Mapping[str, Sequence[Span]] | None = None) -> list[FindingMark]:
    """Every finding event of the trace, with the spans it concerns."""
    if children is None:
        children = _children_index(trace.spans)
    known = {s.span_id for s in trace.spans}
    out = []
    for span in trace.spans:
        for event in span.events:
            if event.name != _names.FINDING_EVENT:
                continue
            a = event.attributes
            detector = str(a.get(_names.FINDING_DETECTOR, ""))
            count = _int(a.get(_names.FINDING_COUNT))
            statement = str(a.get(_names.FINDING_STATEMENT, ""))
            listed = a.get(_names.FINDING_SPAN_IDS)
            if isinstance(listed, list | tuple) and listed:
                ids = frozenset(str(i).lower() for i in listed) & known
                if detector == "n_plus_one" and len(listed) >= _names.FINDING_SPAN_IDS_MAX:
                    ids |= _repeats_under(span, count, statement, children)  # it lists the first ones
            elif detector == "n_plus_one":
                ids = _repeats_under(span, count, statement, children)
            else:
                ids = frozenset()
            if not ids and detector != "n_plus_one" and span.kind != SpanKind.SERVER:
                ids = frozenset((span.span_id,))  # a slow statement, a cache miss: the event's span
            out.append(
                FindingMark(
                    detector=detector,
                    severity=str(a.get(_names.FINDING_SEVERITY, "")),
                    statement=statement,
                    hint=str(a.get(_names.FINDING_HINT, "")),
                    fingerprint=str(a.get(_names.FINDING_FINGERPRINT, "")),
                    count=count,
                    duration_ms=_float(a.get(_names.FINDING_DURATION_MS)),
                    anchor_span_id=span.span_id,
                    span_ids=ids,
                    call_site=CallSite.of(a),
                )
            )
    return out


# --- layout ----------------------------------------------------------------------------------


def _children_index(spans: Sequence[Span]) -> dict[str, list[Span]]:
    index: dict[str, list[Span]] = {}
    for span in spans:
        if span.parent_span_id:
            index.setdefault(span.parent_span_id, []).append(span)
    for members in index.values():
        members.sort(key=lambda s: (s.start_ns, s.end_ns))
    return index


class _Builder:
    def __init__(
        self,
        trace: Trace,
        children: Mapping[str, Sequence[Span]],
        offending: frozenset[str],
        fold_after: int,
    ) -> None:
        self.children = children
        self.offending = offending
        self.fold_after = fold_after
        self.start_ns = min((s.start_ns for s in trace.spans), default=0)
        self.rows: list[Row] = []
        self.visited: set[str] = set()

    def _ms(self, ns: int) -> float:
        return (ns - self.start_ns) / 1e6

    def span_row(self, span: Span, depth: int) -> Row:
        return Row(
            kind="span",
            name=span.name,
            depth=depth,
            offset_ms=self._ms(span.start_ns),
            duration_ms=max(span.end_ns - span.start_ns, 0) / 1e6,
            component=component_of(span),
            span_id=span.span_id,
            parent_span_id=span.parent_span_id,
            service=span.service,
            busy_ms=max(span.end_ns - span.start_ns, 0) / 1e6,
            error=span.status_code == "ERROR",
            offending=span.span_id in self.offending,
            call_site=CallSite.of(span.attributes),
            statement=statement_of(span),
        )

    def fold_row(self, spans: list[Span], depth: int) -> Row:
        first, last_end = spans[0], max(s.end_ns for s in spans)
        ids = {s.span_id for s in spans}
        for span in spans:  # their subtrees are folded away too: they are visited
            self.visited.update(d.span_id for d in _descendants(span.span_id, self.children))
        self.visited.update(ids)
        return Row(
            kind="fold",
            name=first.name,
            depth=depth,
            offset_ms=self._ms(first.start_ns),
            duration_ms=(last_end - first.start_ns) / 1e6,
            component=component_of(first),
            span_id=first.span_id,
            parent_span_id=first.parent_span_id,
            service=first.service,
            count=len(spans),
            busy_ms=sum(max(s.end_ns - s.start_ns, 0) for s in spans) / 1e6,
            error=any(s.status_code == "ERROR" for s in spans),
            offending=not ids.isdisjoint(self.offending),
            call_site=CallSite.of(first.attributes),
            statement=statement_of(first),
            folded_ids=frozenset(ids),
        )

    def walk(self, root: Span) -> None:
        # Iterative depth-first walk: a 10,000-deep chain must not exhaust Python's stack.
        stack: list[tuple[Span | list[Span], int]] = [(root, 0)]
        while stack:
            item, depth = stack.pop()
            if isinstance(item, list):
                self.rows.append(self.fold_row(item, depth))
                continue
            if item.span_id in self.visited:
                continue  # a cycle or a duplicated id
            self.visited.add(item.span_id)
            self.rows.append(self.span_row(item, depth))
            stack.extend(reversed(self._plan(self.children.get(item.span_id, ()), depth + 1)))

    def _plan(self, kids: Sequence[Span], depth: int) -> list[tuple[Span | list[Span], int]]:
        """The children in start order, with each shape's members past ``fold_after`` folded into
        one entry where the first of them would be."""
        seen: dict[tuple[str, str], int] = {}
        folds: dict[tuple[str, str], list[Span]] = {}
        plan: list[tuple[Span | list[Span], int]] = []
        for kid in kids:
            shape = _shape(kid)
            n = seen[shape] = seen.get(shape, 0) + 1
            if n <= self.fold_after:
                plan.append((kid, depth))
                continue
            fold = folds.get(shape)
            if fold is None:
                fold = folds[shape] = []
                plan.append((fold, depth))
            fold.append(kid)
        # A fold of one span is just that span.
        return [(item[0], d) if isinstance(item, list) and len(item) == 1 else (item, d) for item, d in plan]


def _tell(rows: list[Row], marks: Sequence[FindingMark]) -> list[Row]:
    """Each finding goes under the last row of its spans (after the loop of an N+1, under a slow
    statement), or under the span carrying its event when it concerns no single span."""
    told: dict[int, list[FindingMark]] = {}
    position = {row.span_id: i for i, row in enumerate(rows) if row.kind == "span"}
    for mark in marks:
        mine = [
            i
            for i, r in enumerate(rows)
            if r.span_id in mark.span_ids or not r.folded_ids.isdisjoint(mark.span_ids)
        ]
        at = mine[-1] if mine else position.get(mark.anchor_span_id, 0)
        told.setdefault(at, []).append(mark)
    return [replace(r, findings=tuple(told[i])) if i in told else r for i, r in enumerate(rows)]


def _cap(rows: list[Row], max_rows: int) -> list[Row]:
    """At most ``max_rows`` rows, then (at most as many again) the rows findings concern, then
    one "more" row for the rest."""
    if len(rows) <= max_rows:
        return rows
    kept, rest = rows[:max_rows], rows[max_rows:]
    shown = {r.span_id for r in kept if r.kind == "span"}
    later = {r.span_id: i for i, r in enumerate(rest) if r.kind == "span"}
    wanted: set[int] = set()
    for i, row in enumerate(rest):
        if not (row.offending or row.findings) or len(wanted) >= max_rows:
            continue
        wanted.add(i)
        parent = row.parent_span_id  # and its ancestors, so that it is shown where it belongs
        while parent in later and later[parent] not in wanted and parent not in shown:
            wanted.add(later[parent])
            parent = rest[later[parent]].parent_span_id
    hidden = [r for i, r in enumerate(rest) if i not in wanted]
    kept += [r for i, r in enumerate(rest) if i in wanted]
    if hidden:
        first = min(r.offset_ms for r in hidden)
        end = max(r.offset_ms + r.duration_ms for r in hidden)
        kept.append(
            Row(
                kind="more",
                name=f"{sum(r.count for r in hidden):,} more spans",
                depth=0,
                offset_ms=first,
                duration_ms=end - first,
                component="app",
                count=sum(r.count for r in hidden),
            )
        )
    return kept


def build(
    trace: Trace,
    *,
    focus: Callable[[FindingMark], bool] | None = None,
    fold_after: int = FOLD_AFTER,
    max_rows: int = MAX_ROWS,
) -> Waterfall:
    """The waterfall of ``trace``; the spans of the findings ``focus`` accepts (all by default)
    are marked offending. ValueError for a trace without spans."""
    if not trace.spans:
        raise ValueError(f"trace {trace.trace_id} has no spans")
    if fold_after < 1 or max_rows < 1:
        raise ValueError("fold_after and max_rows must be at least 1")
    children = _children_index(trace.spans)
    marks = findings_of(trace, children)
    focused = [m for m in marks if focus is None or focus(m)]
    offending = frozenset().union(*(m.span_ids for m in focused)) if focused else frozenset()
    builder = _Builder(trace, children, offending, fold_after)
    for root in trace.roots:
        builder.walk(root)
    # Spans on a parent cycle are reachable from no root: shown at the top level, not lost.
    for span in sorted(trace.spans, key=lambda s: s.start_ns):
        if span.span_id not in builder.visited:
            builder.walk(span)
    rows = _cap(_tell(builder.rows, focused), max_rows)
    end_ns = max(s.end_ns for s in trace.spans)
    return Waterfall(
        trace_id=trace.trace_id,
        duration_ms=max(end_ns - builder.start_ns, 0) / 1e6,
        rows=tuple(rows),
        span_count=len(trace.spans),
        findings=tuple(marks),
    )
