"""N+1: the same read repeated under one parent span, where one batched read would do.

Spans of one request are grouped by (parent span, kind, shape): SQL by the statement's fingerprint,
Redis reads by command, outgoing HTTP by method + host + path template (``/items/{id}``). Grouping
rather than looking for runs is what catches the interleaved forms: a lazy load that issues two
statements per row (A B A B ...), or pool connect/checkout spans between the repeats. A group is
an N+1 when it has at least ``settings.n_plus_one_min_count`` spans that together take at least
``settings.n_plus_one_min_ms``; qualifying groups of the same shape under several parents (a loop
per batch) make one finding, anchored on their nearest common ancestor.

Not N+1, by construction: eager loads (``selectinload`` is one ``IN`` query, ``joinedload`` one
``JOIN``), a single batched query, fewer repeats than the threshold, a fast cached read, and the
same statement under different parents. Server-side cursor traffic is exempt: statements starting
with FETCH / MOVE / CLOSE, and spans of cursor fetches that repeat the cursor's SELECT (asyncpg's
instrumentation names them ``CURSOR: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan

from otelperf import _names
from otelperf.detectors._api import Finding, Severity, TraceView, attributes_of, component_of, hex_span_id
from otelperf.detectors.fingerprint import fingerprint, statement_fingerprint

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelperf.config import Settings

__all__ = ["NPlusOneDetector", "path_template"]

SQL_READ_HINT = "load the related rows in one query: selectinload()/joinedload(), or a single IN (...) query"
SQL_WRITE_HINT = "batch the writes: executemany() or one multi-row statement"
REDIS_HINT = "batch the reads: MGET / HMGET or a pipeline"
HTTP_HINT = "fetch in one call (a batch endpoint) or concurrently"

# Statements that are cursor traffic or transaction control: repeating them is how they work.
_EXEMPT_VERBS = frozenset(
    ("FETCH", "MOVE", "CLOSE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END", "START")
)

# Redis commands that read one key (or one field): the ones a loop should batch.
REDIS_READS = frozenset({
    "GET", "GETEX", "STRLEN", "EXISTS", "TYPE", "TTL", "PTTL", "HGET", "HGETALL", "HEXISTS", "HLEN",
    "HKEYS", "HVALS", "HSTRLEN", "SMEMBERS", "SISMEMBER", "SCARD", "ZSCORE", "ZRANK", "ZREVRANK",
    "ZCARD", "ZRANGE", "ZREVRANGE", "ZRANGEBYSCORE", "LRANGE", "LINDEX", "LLEN", "JSON.GET",
})  # fmt: skip

_HEX = frozenset("0123456789abcdefABCDEF")


def _is_id(segment: str) -> bool:
    """Whether a path segment is an id: a number, a UUID, or a long hex string (no regex: hot path)."""
    if not segment:
        return False
    if segment.isdigit():
        return True
    length = len(segment)
    if length == 36 and segment.count("-") == 4:
        return all(c in _HEX for c in segment.replace("-", ""))
    return length >= 16 and all(c in _HEX for c in segment) and any(c.isdigit() for c in segment)


@lru_cache(maxsize=2048)
def path_template(path: str) -> str:
    """``/items/42/photos/9f3c...`` -> ``/items/{id}/photos/{id}``."""
    return "/".join("{id}" if _is_id(segment) else segment for segment in path.split("/"))


@lru_cache(maxsize=2048)
def _http_operation(method: str, address: str | None, url: str) -> str:
    try:
        parts = urlsplit(url)
        host = address or parts.hostname or ""
        path = parts.path
    except ValueError:
        host, path = address or "", ""
    return f"{method} {host}{path_template(path or '/')}"


def _key(span: ReadableSpan, attributes: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(kind, shape shown to the user, fingerprint) of a span that could be part of an N+1."""
    # Our instrumentation says the component; component_of() works it out for anyone else's.
    component = attributes.get(_names.COMPONENT) or component_of(span)
    if component == "db":
        text = attributes.get(_names.DB_QUERY_TEXT) or attributes.get(_names.DB_STATEMENT_LEGACY)
        if not isinstance(text, str):
            return None
        if span.name.startswith("CURSOR"):
            return None
        normalized, fp = statement_fingerprint(text)
        verb = normalized.split(" ", 1)[0]
        if verb in _EXEMPT_VERBS:
            return None
        return "sql", normalized, fp
    if component == "cache":
        if attributes.get(_names.DB_SYSTEM_NAME) != "redis":
            return None
        command = attributes.get(_names.DB_OPERATION_NAME)
        if not isinstance(command, str) or command.upper() not in REDIS_READS:
            return None
        statement = f"{command.upper()} ?"
        return "redis", statement, fingerprint("redis " + statement)
    if component == "http":
        method = attributes.get(_names.HTTP_REQUEST_METHOD)
        url = attributes.get(_names.URL_FULL)
        if not isinstance(method, str) or not isinstance(url, str):
            return None
        address = attributes.get(_names.SERVER_ADDRESS)
        statement = _http_operation(method, address if isinstance(address, str) else None, url)
        return "http", statement, fingerprint("http " + statement)
    return None


def _hint(kind: str, statement: str) -> str:
    if kind == "redis":
        return REDIS_HINT
    if kind == "http":
        return HTTP_HINT
    return SQL_READ_HINT if statement.startswith(("SELECT ", "WITH ")) else SQL_WRITE_HINT


class _Group:
    __slots__ = ("spans", "total_ms")

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.total_ms = 0.0


class NPlusOneDetector:
    """Repeated reads under one parent (SQL, Redis, outgoing HTTP); one finding per shape per request."""

    name = "n_plus_one"

    def __init__(self, settings: Settings, meter: Meter | None = None) -> None:
        del meter  # findings are counted by the sink
        self.min_count = int(settings.n_plus_one_min_count)
        self.min_ms = float(settings.n_plus_one_min_ms)
        self.critical_ms = float(settings.slow_query_critical_ms)

    def analyze(self, trace: TraceView) -> list[Finding]:
        if len(trace.spans) <= self.min_count:
            return []  # a repeat needs min_count spans under the root: not there
        root = trace.root
        groups: dict[tuple[int, str], _Group] = {}
        shapes: dict[str, tuple[str, str]] = {}  # fingerprint -> (kind, statement)
        for span in trace.spans:
            parent = span.parent
            if parent is None or span is root or span.start_time is None or span.end_time is None:
                continue
            attributes = attributes_of(span)
            if not attributes:
                continue
            key = _key(span, attributes)
            if key is None:
                continue
            kind, statement, fp = key
            group = groups.get((parent.span_id, fp))
            if group is None:
                group = groups[parent.span_id, fp] = _Group()
                shapes.setdefault(fp, (kind, statement))
            group.spans.append(span)
            group.total_ms += (span.end_time - span.start_time) / 1e6
        qualifying: dict[str, list[tuple[int, _Group]]] = {}
        for (parent_id, fp), group in groups.items():
            if len(group.spans) >= self.min_count and group.total_ms >= self.min_ms:
                qualifying.setdefault(fp, []).append((parent_id, group))
        if not qualifying:
            return []
        return [self._finding(trace, fp, shapes[fp], found) for fp, found in qualifying.items()]

    def _finding(
        self, trace: TraceView, fp: str, shape: tuple[str, str], found: list[tuple[int, _Group]]
    ) -> Finding:
        kind, statement = shape
        spans = [span for _, group in found for span in group.spans]
        spans.sort(key=lambda s: s.start_time or 0)
        total_ms = sum(group.total_ms for _, group in found)
        anchor = _common_ancestor(trace, [parent_id for parent_id, _ in found])
        root_start = trace.root.start_time or 0
        first, last = spans[0], spans[-1]
        severity: Severity = "critical" if total_ms >= self.critical_ms else "warning"
        return Finding(
            detector=self.name,
            severity=severity,
            route=trace.route,
            fingerprint=fp,
            statement=statement,
            count=len(spans),
            duration_ms=total_ms,
            trace_id=trace.trace_id,
            anchor_span_id=anchor,
            span_ids=tuple(hex_span_id(s) for s in spans),
            hint=_hint(kind, statement),
            details={
                "kind": kind,
                "count": len(spans),
                "parents": len(found),
                "first_offset_ms": round(((first.start_time or 0) - root_start) / 1e6, 3),
                "last_offset_ms": round(((last.start_time or 0) - root_start) / 1e6, 3),
                "mean_ms": round(total_ms / len(spans), 3),
            },
        )


def _common_ancestor(trace: TraceView, parent_ids: Sequence[int]) -> str:
    """Hex id of the nearest span that is (or contains) every one of ``parent_ids``."""
    if len(parent_ids) == 1:
        return format(parent_ids[0], "016x")
    # Only for findings under several parents, which are rare: an id -> parent map of the trace.
    parents: dict[int, int | None] = {}
    for span in trace.spans:
        if span.context is not None:
            parents[span.context.span_id] = span.parent.span_id if span.parent is not None else None

    def chain(span_id: int | None) -> list[int]:
        out: list[int] = []
        while span_id is not None and span_id not in out:
            out.append(span_id)
            span_id = parents.get(span_id)
        return out

    common = chain(parent_ids[0])
    for other in parent_ids[1:]:
        ancestors = set(chain(other))
        common = [span_id for span_id in common if span_id in ancestors]
    if common:
        return format(common[0], "016x")
    return hex_span_id(trace.root)
