"""N+1: the same read repeated under one parent span, where one batched read would do.

Spans of one request are grouped by (parent span, kind, shape): SQL by the statement's fingerprint,
Redis reads by command, outgoing HTTP by method + host + path template (``/items/{id}``). Grouping
rather than looking for runs is what catches the interleaved forms: a lazy load that issues two
statements per row (A B A B ...), or pool connect/checkout spans between the repeats. A group is
an N+1 when it has at least ``settings.n_plus_one_min_count`` spans and its *window* (from the start
of the first repeat to the end of the last: the round trips, the ORM's hydration and the Python in
between, which is what batching saves) takes at least ``settings.n_plus_one_min_ms``, or takes at
least a third of a fast request (and at least a fifth of ``n_plus_one_min_ms``, so a loop of
cheap reads in a 2 ms request is no finding). The statements' own time counts too, for loops whose
repeats overlap (concurrent calls). Qualifying groups of the same shape under several parents (a
loop per batch) make one finding, anchored on their nearest common ancestor; its time is the sum
of their windows.

The finding names the loop's line (the call site most repeats share, ``code.*`` on their spans)
and the query that loaded the rows being looped over: for an ORM relationship (lazy loads, or a
query doing a relationship's work per parent, marked by the SQLAlchemy instrumentation), the
latest SELECT from the parent's table before the loop; otherwise the latest SELECT before it. The
hint is the exact fix: ``add .options(selectinload(Author.books)) to the query at
app/routes.py:42 in list_authors()`` for a relationship, one ``IN`` query (the statement, shown)
for a SELECT in a loop, MGET/HMGET or a pipeline for Redis, a batch endpoint for HTTP.

Not N+1, by construction: eager loads (``selectinload`` is one ``IN`` query, ``joinedload`` one
``JOIN``), a single batched query, fewer repeats than the threshold, a fast cached read, and the
same statement under different parents. Server-side cursor traffic is exempt: statements starting
with FETCH / MOVE / CLOSE, and spans of cursor fetches that repeat the cursor's SELECT (asyncpg's
instrumentation names them ``CURSOR: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan

from otelperf import _names
from otelperf.detectors._api import Finding, Severity, TraceView, attributes_of, component_of, hex_span_id
from otelperf.detectors._callsites import CallSite, call_site_of, common_call_site
from otelperf.detectors.fingerprint import fingerprint, statement_fingerprint

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelperf.config import Settings

__all__ = ["NPlusOneDetector", "path_template"]

SQL_WRITE_HINT = "batch the writes: executemany() or one multi-row statement"
# A loop takes a large share of a fast request at this share of the request's duration...
REQUEST_SHARE = 1 / 3
# ...when it also takes at least this part of n_plus_one_min_ms (10 ms of the default 50 ms).
SHARE_FLOOR = 1 / 5
_MAX_CHAIN = 4  # relationships chained in one fix (author.books, each book's reviews...)

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


_EQUALITY = re.compile(r" WHERE (?:\(|NOT )*(?:(?P<left>[\w.\"$]+) = \?|\? = (?P<right>[\w.\"$]+))")


def in_query(statement: str) -> str | None:
    """The statement with its first ``column = ?`` condition as ``column IN (?)``: the one query.

    >>> in_query("SELECT book.id FROM book WHERE ? = book.author_id")
    'SELECT book.id FROM book WHERE book.author_id IN (?)'
    """
    match = _EQUALITY.search(statement)
    if match is None:
        return None
    text, left = match.group(0), match.group("left")
    if left is not None:
        replaced = text.replace(f"{left} = ?", f"{left} IN (?)", 1)
    else:
        right = match.group("right")
        replaced = text.replace(f"? = {right}", f"{right} IN (?)", 1)
    return statement[: match.start()] + replaced + statement[match.end() :]


_BATCH_COMMAND = {"GET": "MGET", "HGET": "HMGET"}


def _at(site: CallSite | None) -> str:
    return "" if site is None else f" at {site}"


def _hint(
    kind: str,
    statement: str,
    *,
    count: int,
    loop: CallSite | None,
    orm: tuple[str, str] | None,
    path: Sequence[str] = (),
    parent: CallSite | None,
) -> str:
    """The exact fix, in the words a developer would act on. ``path``: the relationships to load
    with the parents' query, outermost first (``Author.books``, ``Book.reviews``)."""
    at_loop = _at(loop)
    if kind == "redis":
        command = statement.split(" ", 1)[0]
        batch = _BATCH_COMMAND.get(command)
        if batch is not None:
            return f"batch the reads: one {batch} for the {count} {command} calls{at_loop}, or a pipeline"
        return f"batch the reads: send the {count} {command} calls{at_loop} in one pipeline"
    if kind == "http":
        endpoint = f"a batch endpoint for {statement}"
        return f"fetch in one call ({endpoint}) or concurrently: the {count} calls{at_loop}"
    if not statement.startswith(("SELECT ", "WITH ")):
        return f"{SQL_WRITE_HINT}: the {count} statements{at_loop}"
    batched = in_query(statement)
    if orm is not None:
        relationship, load = orm
        chain = ".".join(f"selectinload({step})" for step in (path or (relationship,)))
        option = f"`.options({chain})`"
        if parent is not None:
            target = f"the query{_at(parent)}"
        else:
            target = f"the query that loads the {(path or (relationship,))[0].split('.')[0]} rows"
        if load == "lazy":
            return f"add {option} to {target}: {relationship} is lazily loaded {count} times{at_loop}"
        key = relationship.rsplit(".", 1)[-1]
        instead = f"add {option} to {target} and read `.{key}` instead of the {count} queries{at_loop}"
        return instead if batched is None else f"{instead} (or one `IN` query: {batched})"
    if batched is not None:
        return f"run one `IN` query for all of them: {batched}, instead of the {count} queries{at_loop}"
    return f"load the rows in one query (a JOIN or one `IN` query) instead of the {count} queries{at_loop}"


class _Group:
    __slots__ = ("end", "spans", "start", "total_ms")

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.total_ms = 0.0
        self.start = 0  # ns: the first repeat's start...
        self.end = 0  # ...and the last one's end

    @property
    def window_ms(self) -> float:
        return (self.end - self.start) / 1e6


class NPlusOneDetector:
    """Repeated reads under one parent (SQL, Redis, outgoing HTTP); one finding per shape per request."""

    name = "n_plus_one"

    def __init__(self, settings: Settings, meter: Meter | None = None) -> None:
        del meter  # findings are counted by the sink
        self.min_count = int(settings.n_plus_one_min_count)
        self.min_ms = float(settings.n_plus_one_min_ms)
        self.share_floor_ms = self.min_ms * SHARE_FLOOR
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
            start, end = span.start_time, span.end_time
            group = groups.get((parent.span_id, fp))
            if group is None:
                group = groups[parent.span_id, fp] = _Group()
                group.start, group.end = start, end
                shapes.setdefault(fp, (kind, statement))
            elif start < group.start:
                group.start = start
            group.end = max(group.end, end)
            group.spans.append(span)
            group.total_ms += (end - start) / 1e6
        qualifying: dict[str, list[tuple[int, _Group]]] = {}
        request_ms = ((root.end_time or 0) - (root.start_time or 0)) / 1e6
        for (parent_id, fp), group in groups.items():
            if len(group.spans) >= self.min_count and self._costly(group, request_ms):
                qualifying.setdefault(fp, []).append((parent_id, group))
        if not qualifying:
            return []
        return [self._finding(trace, fp, shapes[fp], found) for fp, found in qualifying.items()]

    def _costly(self, group: _Group, request_ms: float) -> bool:
        """The time rule: the loop's window (or, for overlapping repeats, their own time) is long,
        or the loop is a large share of a fast request."""
        window_ms = group.window_ms
        if max(window_ms, group.total_ms) >= self.min_ms:
            return True
        return window_ms >= self.share_floor_ms and window_ms >= request_ms * REQUEST_SHARE

    def _finding(
        self, trace: TraceView, fp: str, shape: tuple[str, str], found: list[tuple[int, _Group]]
    ) -> Finding:
        kind, statement = shape
        spans = [span for _, group in found for span in group.spans]
        spans.sort(key=lambda s: s.start_time or 0)
        statements_ms = sum(group.total_ms for _, group in found)
        window_ms = sum(group.window_ms for _, group in found)
        cost_ms = max(window_ms, statements_ms)
        anchor = _common_ancestor(trace, [parent_id for parent_id, _ in found])
        root_start = trace.root.start_time or 0
        first, last = spans[0], spans[-1]
        severity: Severity = "critical" if cost_ms >= self.critical_ms else "warning"
        loop = common_call_site(spans)
        details: dict[str, Any] = {
            "kind": kind,
            "count": len(spans),
            "parents": len(found),
            "first_offset_ms": round(((first.start_time or 0) - root_start) / 1e6, 3),
            "last_offset_ms": round(((last.start_time or 0) - root_start) / 1e6, 3),
            "mean_ms": round(statements_ms / len(spans), 3),
            "window_ms": round(window_ms, 3),
            "statements_ms": round(statements_ms, 3),
        }
        if loop is not None:
            details.update(loop.details())
        orm = _orm_of(first) if kind == "sql" else None
        parent_site = None
        path: list[str] = []  # the relationships to load with the parents' query, outermost first
        if kind == "sql":
            parent_query = _parent_query(trace, first, fp, orm[2] if orm is not None else None)
            if orm is not None:
                path.append(orm[0])
                # Parents that were themselves lazily loaded (author.books, then each book's
                # reviews): the fix chains the options on the query that loaded the outermost rows.
                while parent_query is not None and len(path) < _MAX_CHAIN:
                    outer = _orm_of(parent_query[2])
                    if outer is None or outer[1] != "lazy":
                        break
                    path.insert(0, outer[0])
                    outer_key = _key(parent_query[2], attributes_of(parent_query[2]))
                    parent_query = _parent_query(
                        trace, parent_query[2], outer_key[2] if outer_key else "", outer[2]
                    )
            if parent_query is not None:
                parent_statement, parent_site, _ = parent_query
                details["parent_statement"] = parent_statement
                if parent_site is not None:
                    details["parent_call_site"] = str(parent_site)
        if orm is not None:
            details["relationship"], details["load"] = orm[0], orm[1]
        return Finding(
            detector=self.name,
            severity=severity,
            route=trace.route,
            fingerprint=fp,
            statement=statement,
            count=len(spans),
            duration_ms=cost_ms,
            trace_id=trace.trace_id,
            anchor_span_id=anchor,
            span_ids=tuple(hex_span_id(s) for s in spans),
            hint=_hint(
                kind,
                statement,
                count=len(spans),
                loop=loop,
                orm=orm[:2] if orm is not None else None,
                path=path,
                parent=parent_site,
            ),
            details=details,
        )


def _orm_of(span: ReadableSpan) -> tuple[str, str, str | None] | None:
    """(relationship, load, parent table) that the SQLAlchemy instrumentation put on a statement."""
    attributes = attributes_of(span)
    relationship = attributes.get(_names.ORM_RELATIONSHIP)
    if not isinstance(relationship, str) or not relationship:
        return None
    load = attributes.get(_names.ORM_LOAD)
    table = attributes.get(_names.ORM_PARENT_TABLE)
    return relationship, load if isinstance(load, str) else "lazy", table if isinstance(table, str) else None


def _parent_query(
    trace: TraceView, first: ReadableSpan, fp: str, parent_table: str | None
) -> tuple[str, CallSite | None, ReadableSpan] | None:
    """(statement, call site, span) of the query that loaded the rows the loop runs over: the latest
    SELECT that ended before the loop's first repeat (from ``parent_table`` when it is known)."""
    before = first.start_time or 0
    best: ReadableSpan | None = None
    best_end = -1
    best_statement = ""
    for span in trace.spans_of("db"):
        end = span.end_time
        if end is None or end > before or end <= best_end or span is trace.root:
            continue
        attributes = attributes_of(span)
        if parent_table is not None and attributes.get(_names.DB_COLLECTION_NAME) != parent_table:
            continue
        key = _key(span, attributes)
        if key is None or key[2] == fp or not key[1].startswith(("SELECT ", "WITH ")):
            continue
        best, best_end, best_statement = span, end, key[1]
    if best is None:
        return None
    return best_statement, call_site_of(best), best


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
