"""Jaeger's api_v3: search traces and get one by id, as simple typed spans.

api_v3 answers OTLP JSON (``{"result": {"resourceSpans": [...]}}``). Jaeger writes ids as hex and
enums as numbers; protobuf's canonical JSON would write ids as base64 and enums as names; both
are read. A search with no match is HTTP 404 ("No traces found"), read as no traces.

    >>> jaeger = Jaeger()  # http://127.0.0.1:16686
    >>> traces = jaeger.search("shop", operation="GET /orders", start=t0, end=t1)  # doctest: +SKIP
    >>> slowest = max(traces, key=lambda t: t.root.duration_ms)  # doctest: +SKIP
    >>> [s.name for s in jaeger.trace(slowest.trace_id).spans]  # doctest: +SKIP
    ['GET /orders', 'SELECT orders', 'SELECT order_items', ...]
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from otelperf.backends._http import DEFAULT_TIMEOUT_S, BackendBadAnswer, BackendHTTPError, get_json, get_text

__all__ = [
    "JAEGER_URL",
    "Jaeger",
    "Span",
    "SpanEvent",
    "SpanKind",
    "Trace",
    "any_value",
    "attributes",
    "group_traces",
    "hex_id",
    "iter_events",
    "parse_spans",
    "rfc3339",
]

JAEGER_URL = "http://127.0.0.1:16686"
TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8
_HEX = frozenset("0123456789abcdefABCDEF")


class SpanKind(IntEnum):
    """OTLP's span kind (an int, so ``span.kind == 2`` reads as SERVER too)."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5

    @classmethod
    def parse(cls, value: Any) -> SpanKind:
        if isinstance(value, str) and not value.isdigit():
            name = value.removeprefix("SPAN_KIND_")
            return cls[name] if name in cls.__members__ else cls.UNSPECIFIED
        number = int(value or 0)
        return cls(number) if 0 <= number <= 5 else cls.UNSPECIFIED


_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class Span:
    """One span as Jaeger stored it: ids in lower-case hex, times in unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    name: str
    kind: SpanKind
    service: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    events: tuple[SpanEvent, ...] = ()
    status_code: str = "UNSET"  # "UNSET" | "OK" | "ERROR"
    status_message: str = ""
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def events_named(self, name: str) -> list[SpanEvent]:
        return [e for e in self.events if e.name == name]


@dataclass(frozen=True)
class Trace:
    """The spans of one trace that Jaeger returned (all of them for :meth:`Jaeger.trace`)."""

    trace_id: str
    spans: tuple[Span, ...]

    def by_id(self) -> dict[str, Span]:
        return {s.span_id: s for s in self.spans}

    @property
    def roots(self) -> list[Span]:
        """Spans whose parent is not in the trace (the entry span; more when a parent is missing)."""
        ids = {s.span_id for s in self.spans}
        return sorted((s for s in self.spans if s.parent_span_id not in ids), key=lambda s: s.start_ns)

    @property
    def root(self) -> Span:
        """The earliest root span; IndexError for a trace without spans."""
        return self.roots[0]

    def children(self, parent: Span) -> list[Span]:
        return sorted((s for s in self.spans if s.parent_span_id == parent.span_id), key=lambda s: s.start_ns)


def hex_id(value: str, size: int) -> str:
    """An OTLP JSON id as lower-case hex: Jaeger writes hex, protobuf's canonical JSON base64.

    >>> hex_id("5B8EFFF798038103D269B633813FC60C", 16), hex_id("EjRWeJCrze8=", 8)
    ('5b8efff798038103d269b633813fc60c', '1234567890abcdef')
    """
    if not value:
        return ""
    if len(value) == size * 2 and _HEX.issuperset(value):
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"not a {size}-byte id in hex or base64: {value!r}") from None
    if len(raw) != size:
        raise ValueError(f"not a {size}-byte id in hex or base64: {value!r}")
    return raw.hex()


def any_value(value: Mapping[str, Any]) -> Any:
    """An OTLP ``AnyValue`` as Python: str, int (proto3 JSON writes int64 as text), float, bool, list."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values"))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    return None


def attributes(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """OTLP ``[{"key": k, "value": AnyValue}]`` -> ``{k: value}``."""
    return {item["key"]: any_value(item.get("value") or {}) for item in items or ()}


def _status(raw: Mapping[str, Any] | None) -> tuple[str, str]:
    raw = raw or {}
    code = raw.get("code", 0)
    if isinstance(code, str) and not code.isdigit():
        name = code.removeprefix("STATUS_CODE_")
    else:
        name = _STATUS.get(int(code or 0), "UNSET")
    return name, str(raw.get("message", ""))


def _span(raw: Mapping[str, Any], resource: dict[str, Any], scope: str) -> Span:
    code, message = _status(raw.get("status"))
    return Span(
        trace_id=hex_id(raw["traceId"], TRACE_ID_BYTES),
        span_id=hex_id(raw["spanId"], SPAN_ID_BYTES),
        parent_span_id=hex_id(raw.get("parentSpanId", ""), SPAN_ID_BYTES),
        name=str(raw.get("name", "")),
        kind=SpanKind.parse(raw.get("kind", 0)),
        service=str(resource.get("service.name", "")),
        start_ns=int(raw.get("startTimeUnixNano", 0)),
        end_ns=int(raw.get("endTimeUnixNano", 0)),
        attributes=attributes(raw.get("attributes")),
        events=tuple(
            SpanEvent(str(e.get("name", "")), int(e.get("timeUnixNano", 0)), attributes(e.get("attributes")))
            for e in raw.get("events") or ()
        ),
        status_code=code,
        status_message=message,
        resource=resource,
        scope=scope,
    )


def parse_spans(document: Mapping[str, Any]) -> list[Span]:
    """Every span of an api_v3 answer (``{"result": {"resourceSpans": ...}}``) or of a bare
    OTLP ``TracesData`` (``{"resourceSpans": ...}``); ValueError names what is malformed."""
    data = document.get("result", document) if isinstance(document, Mapping) else None
    if not isinstance(data, Mapping):
        raise ValueError("not an OTLP JSON traces document")
    out: list[Span] = []
    try:
        for resource_spans in data.get("resourceSpans") or ():
            resource = attributes((resource_spans.get("resource") or {}).get("attributes"))
            for scope_spans in resource_spans.get("scopeSpans") or ():
                scope = str((scope_spans.get("scope") or {}).get("name", ""))
                out.extend(_span(raw, resource, scope) for raw in scope_spans.get("spans") or ())
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed OTLP JSON span: {type(exc).__name__}: {exc}") from None
    return out


def group_traces(spans: Iterable[Span]) -> list[Trace]:
    """Spans by trace, in the order the traces first appear."""
    grouped: dict[str, list[Span]] = {}
    for span in spans:
        grouped.setdefault(span.trace_id, []).append(span)
    return [Trace(trace_id, tuple(members)) for trace_id, members in grouped.items()]


def rfc3339(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


class Jaeger:
    """A client of Jaeger's query service (api_v3, HTTP). Errors: :class:`~otelperf.backends.BackendError`."""

    def __init__(self, url: str = JAEGER_URL, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def trace_url(self, trace_id: str) -> str:
        """The trace's page in the Jaeger UI."""
        return f"{self.url}/trace/{trace_id}"

    def trace_api_url(self, trace_id: str) -> str:
        return f"{self.url}/api/v3/traces/{trace_id}"

    def _document(self, path: str, params: Mapping[str, str] | None, timeout: float | None) -> Any:
        try:
            return get_json(self.url + path, params, timeout=timeout or self.timeout)
        except BackendHTTPError as exc:
            if exc.status == 404:  # "No traces found" / "trace not found"
                return {}
            raise

    def _spans(self, path: str, params: Mapping[str, str] | None, timeout: float | None) -> list[Span]:
        url = self.url + path
        document = self._document(path, params, timeout)
        try:
            return parse_spans(document)
        except ValueError as exc:
            raise BackendBadAnswer(f"{url}: {exc}", url=url) from None

    def trace(self, trace_id: str, *, timeout: float | None = None) -> Trace:
        """Every span Jaeger holds of ``trace_id`` (none while it has not stored any)."""
        spans = self._spans(f"/api/v3/traces/{trace_id}", None, timeout)
        return Trace(trace_id.lower(), tuple(spans))

    @staticmethod
    def search_params(
        service: str, *, operation: str = "", start: float, end: float, limit: int = 100
    ) -> dict[str, str]:
        params = {
            "query.service_name": service,
            # Whole seconds in RFC 3339: widen by one on each side so the edges are in.
            "query.start_time_min": rfc3339(start - 1),
            "query.start_time_max": rfc3339(end + 1),
            "query.num_traces": str(limit),  # api_v3's name for the search depth
        }
        if operation:
            params["query.operation_name"] = operation
        return params

    def search_spans(
        self,
        service: str,
        *,
        operation: str = "",
        start: float,
        end: float,
        limit: int = 100,
        timeout: float | None = None,
    ) -> list[Span]:
        """Every span of the traces of ``service`` (with a span named ``operation``, if given)
        started between ``start`` and ``end`` (unix seconds); at most ``limit`` traces."""
        params = self.search_params(service, operation=operation, start=start, end=end, limit=limit)
        return self._spans("/api/v3/traces", params, timeout)

    def search(
        self,
        service: str,
        *,
        operation: str = "",
        start: float,
        end: float,
        limit: int = 100,
        timeout: float | None = None,
    ) -> list[Trace]:
        """:meth:`search_spans`, grouped by trace."""
        spans = self.search_spans(
            service, operation=operation, start=start, end=end, limit=limit, timeout=timeout
        )
        return group_traces(spans)

    def search_text(
        self, service: str, *, start: float, end: float, limit: int = 100, timeout: float | None = None
    ) -> str:
        """The raw JSON text of a search (``""`` when nothing matched): for tests that read what
        Jaeger holds byte for byte."""
        params = self.search_params(service, start=start, end=end, limit=limit)
        try:
            return get_text(self.url + "/api/v3/traces", params, timeout=timeout or self.timeout)
        except BackendHTTPError as exc:
            if exc.status == 404:
                return ""
            raise

    def trace_text(self, trace_id: str, *, timeout: float | None = None) -> str:
        """The raw JSON text of a trace (``""`` when Jaeger has none of it)."""
        try:
            return get_text(self.trace_api_url(trace_id), timeout=timeout or self.timeout)
        except BackendHTTPError as exc:
            if exc.status == 404:
                return ""
            raise

    def services(self, *, timeout: float | None = None) -> list[str]:
        """The services Jaeger has spans of."""
        url = self.url + "/api/v3/services"
        document = get_json(url, timeout=timeout or self.timeout)
        services = document.get("services") if isinstance(document, dict) else None
        if not isinstance(services, list):
            raise BackendBadAnswer(f"{url}: no services list in the answer", url=url)
        return sorted(str(s) for s in services)


def iter_events(spans: Iterable[Span], name: str) -> Iterator[tuple[Span, SpanEvent]]:
    """(span, event) for every event called ``name``, e.g. ``otelperf.finding``."""
    for span in spans:
        for event in span.events:
            if event.name == name:
                yield span, event
