"""The detectors' shared vocabulary: a finished local trace in, findings out."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from otelperf import _names
from otelperf._sdk import readable as _readable

Severity = Literal["warning", "critical"]
Component = Literal["db", "cache", "http", "app"]


@dataclass(frozen=True)
class Finding:
    """One thing a detector found in one request.

    ``details["call_site"]`` (with the ``code.*`` semantic-convention keys) names the line of the
    application that ran them, when the spans carry it.

    ``anchor_span_id`` is where the finding is shown in the trace (the parent of repeated queries,
    the slow statement, the request itself); ``span_ids`` are the spans it concerns.
    ``expected`` is the reason given when the finding was marked expected (``otelperf.expect()``
    or ``[[expected]]`` in otelperf.toml), else None: counted apart, it neither alerts nor fails tests.
    """

    detector: str
    severity: Severity
    route: str
    fingerprint: str
    statement: str
    count: int
    duration_ms: float
    trace_id: str
    anchor_span_id: str
    span_ids: tuple[str, ...]
    hint: str
    details: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    expected: str | None = None

    def summary(self) -> str:
        marked = "" if self.expected is None else f" (expected: {self.expected or 'no reason given'})"
        return (
            f"{self.detector} [{self.severity}] {self.route}: {self.statement} x{self.count} "
            f"({self.duration_ms:.1f} ms){marked} - {self.hint}"
        )


def hex_span_id(span: ReadableSpan) -> str:
    ctx = span.context
    return format(ctx.span_id, "016x") if ctx is not None else ""


def hex_trace_id(span: ReadableSpan) -> str:
    ctx = span.context
    return format(ctx.trace_id, "032x") if ctx is not None else ""


def duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6


# Finding.details keys that go on the finding's span event, by attribute name.
_EVENT_DETAILS = (
    (_names.FINDING_CALL_SITE, "call_site"),
    (_names.CODE_FILE_PATH, _names.CODE_FILE_PATH),
    (_names.CODE_LINE_NUMBER, _names.CODE_LINE_NUMBER),
    (_names.CODE_FUNCTION_NAME, _names.CODE_FUNCTION_NAME),
    (_names.FINDING_RELATIONSHIP, "relationship"),
    (_names.FINDING_PARENT_STATEMENT, "parent_statement"),
    (_names.FINDING_PARENT_CALL_SITE, "parent_call_site"),
    (_names.FINDING_WINDOW_MS, "window_ms"),
)


def detail_attributes(finding: Finding) -> dict[str, Any]:
    """The event attributes a finding carries beyond the common ones (and its plan): its call site
    (``code.*`` and ``otelperf.finding.call_site``), relationship and parent query, when known."""
    details = finding.details
    return {name: details[key] for name, key in _EVENT_DETAILS if details.get(key) is not None}


_NO_ATTRIBUTES: Mapping[str, Any] = {}


def attributes_of(span: ReadableSpan) -> Mapping[str, Any]:
    """A span's attributes for reading. ``ReadableSpan.attributes`` builds a new read-only proxy at
    every access; the detectors read several attributes of every span, so they read the mapping
    itself (and never write to it)."""
    attributes: Mapping[str, Any] | None = _readable.attributes_or_none(span)
    if attributes is None:
        return span.attributes or _NO_ATTRIBUTES
    return attributes


def component_of(span: ReadableSpan) -> Component:
    """Which part of the stack a span's time belongs to: db, cache, http (outgoing) or app."""
    attributes = attributes_of(span)
    component = attributes.get(_names.COMPONENT)
    if type(component) is str and component in _NAMED_COMPONENTS:
        return component  # type: ignore[return-value]
    return _unnamed_component(span, attributes)


def _unnamed_component(span: ReadableSpan, attributes: Mapping[str, Any]) -> Component:
    """component_of() for a span whose attributes do not name its component (not otelperf's).

    A SERVER span is the app's: it is a request being handled (every request's root), whatever
    its attributes say; its children carry the time of the database, caches and calls."""
    kind = _readable.kind_of(span) if _readable.FIELDS_HOLD and type(span) is ReadableSpan else span.kind
    if kind is SpanKind.SERVER:
        return "app"
    if attributes.get(_names.CACHE_NAME) is not None:
        return "cache"
    system = attributes.get(_names.DB_SYSTEM_NAME)
    if system is not None:
        return "cache" if system == "redis" else "db"
    if kind is SpanKind.CLIENT and attributes.get(_names.HTTP_REQUEST_METHOD) is not None:
        return "http"
    return "app"


_NAMED_COMPONENTS = frozenset(("db", "cache", "http"))  # what component_of() takes from the attribute


class TraceView:
    """The spans one request produced in this process, ended, with its local root."""

    __slots__ = ("_children", "_components", "root", "spans")

    def __init__(self, root: ReadableSpan, spans: Sequence[ReadableSpan]) -> None:
        self.root = root
        self.spans = spans
        self._children: dict[int, list[ReadableSpan]] | None = None
        self._components: dict[Component, list[ReadableSpan]] | None = None

    @property
    def route(self) -> str:
        return self.root.name

    @property
    def trace_id(self) -> str:
        return hex_trace_id(self.root)

    def children_of(self, span: ReadableSpan) -> list[ReadableSpan]:
        if self._children is None:
            index: dict[int, list[ReadableSpan]] = {}
            for s in self.spans:
                if s.parent is not None:
                    index.setdefault(s.parent.span_id, []).append(s)
            self._children = index
        ctx = span.context
        return self._children.get(ctx.span_id, []) if ctx is not None else []

    def spans_of(self, component: Component) -> Sequence[ReadableSpan]:
        """The spans (the root included) of one component, worked out once per request for all
        detectors: most requests have no cache or no database span, and a detector that has
        nothing to look at should not read every span's attributes to find that out."""
        index = self._components
        if index is None:
            index = {}
            for s in self.spans:
                # otelperf's own spans name their component: read it here, without a call.
                attributes = _readable.attributes_or_none(s)
                if type(attributes) is not dict:
                    attributes = attributes_of(s)
                named = attributes.get(_names.COMPONENT)
                found: Component = (
                    named  # type: ignore[assignment]
                    if type(named) is str and named in _NAMED_COMPONENTS
                    else _unnamed_component(s, attributes)
                )
                index.setdefault(found, []).append(s)
            self._components = index
        return index.get(component, ())

    def of_component(self, component: Component) -> Iterator[ReadableSpan]:
        root = self.root
        return (s for s in self.spans_of(component) if s is not root)


class Detector(Protocol):
    """Reads a finished request; returns what it found. Runs on the detector thread, never the app's,
    and on one thread at a time (the pipeline sees to it): its own state needs no lock for that."""

    name: str

    def analyze(self, trace: TraceView) -> list[Finding]: ...
