"""Independent reads awaited one after another in an async handler, which could run concurrently.

::

    user = await session.get(User, user_id)                                   # 30 ms
    orders = (await session.scalars(select(Order).where(...user_id))).all()   # 40 ms, waits for the first
    notes = (await session.scalars(select(Note).where(...user_id))).all()     # 35 ms, waits for both

Run concurrently (``asyncio.gather`` on separate sessions), the three would take about as long as
the longest: the finding reports the sum minus the longest as the time to win.

What counts, per parent span (the code that awaited them), in start order:

- only statements of async engines (``otelperf.db.async``, set for AsyncEngine/AsyncSession): a
  sync route's statements cannot be awaited concurrently;
- only plain reads (``SELECT`` without ``FOR UPDATE``/``FOR SHARE``); a parent with any write, lock
  or transaction-control statement is left alone: its statements are most likely one transaction
  whose order matters;
- a run ends where two statements overlap (already concurrent) or another child span comes between
  (an HTTP call, a cache lookup: its result may feed the next query);
- a statement that may take its parameters from an earlier result ends the run and starts the
  next one. The SQL shows only shapes, so "may" is a heuristic on table and column names: an
  ``IN (...)`` list (keys collected from rows, as selectinload does), or a ``<table>_id`` column
  linking the two tables in either statement (``orders.user_id`` after reading ``users``, a
  ``customer_id`` read before ``customers``). It errs on the side of silence;
- a run needs ``sequential_awaits_min_count`` statements of at least two shapes (one shape
  repeated is the N+1 detector's) and a saving of at least ``sequential_awaits_min_ms``.

Limits, said plainly: a statement whose parameter came from an earlier row through a column named
otherwise is not recognized as dependent; reads that must see one snapshot (a REPEATABLE READ
transaction without writes) look independent. Mark such a case expected (``otelperf.expect``).
The fix is never just ``gather`` on one session: one AsyncSession (one connection) runs one
statement at a time, so concurrency needs a session (a pooled connection) per branch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from otelperf import _names
from otelperf._sdk import readable as _readable
from otelperf.detectors._api import Finding, TraceView, attributes_of, duration_ms, hex_span_id
from otelperf.detectors._callsites import call_site_of
from otelperf.detectors.fingerprint import statement_fingerprint

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelperf.config import Settings

# A bind parameter in any DBAPI style (qmark, format, pyformat, numeric/asyncpg, named), or a
# literal the sanitizer replaced with "?".
_PARAMETER = re.compile(r"\?|%s|%\(\w+\)s|\$\d+|(?<![:\w]):\w+")
# Statements that make a parent's reads part of an ordered transaction.
_ORDERED = ("FOR UPDATE", "FOR SHARE", "FOR NO KEY UPDATE", "FOR KEY SHARE", "LOCK IN SHARE MODE")


class _Read:
    __slots__ = ("collection", "fingerprint", "ms", "span", "statement", "text")

    def __init__(self, span: ReadableSpan, statement: str, collection: str) -> None:
        self.span = span
        self.statement = statement
        self.text = statement.lower()
        self.collection = collection.lower()
        self.fingerprint = statement_fingerprint(statement)[1]
        self.ms = duration_ms(span)


class SequentialAwaitsDetector:
    name = "sequential_awaits"

    def __init__(self, settings: Settings, meter: Meter | None = None) -> None:
        self.min_count = settings.sequential_awaits_min_count
        self.min_ms = settings.sequential_awaits_min_ms

    def analyze(self, trace: TraceView) -> list[Finding]:
        db_spans = trace.spans_of("db")
        if not db_spans:
            return []
        parents: set[int] = set()
        flag = _names.DB_ASYNC
        for span in db_spans:
            # The mapping itself (a dict, or the SDK's BoundedAttributes): no read-only proxy built.
            attributes = _readable.attributes_or_none(span)
            if attributes is None:
                attributes = attributes_of(span)
            if attributes.get(flag) is True:
                parent = span.parent
                if parent is not None:
                    parents.add(parent.span_id)
        if not parents:
            return []  # no statement of an async engine: most requests of a sync service
        children: dict[int, list[ReadableSpan]] = {p: [] for p in parents}
        for span in trace.spans:
            parent = span.parent
            if parent is not None and parent.span_id in children:
                children[parent.span_id].append(span)
        findings = []
        for parent_id, spans in children.items():
            for group in self._runs(spans):
                finding = self._finding(trace, parent_id, group)
                if finding is not None:
                    findings.append(finding)
        return findings

    def _runs(self, spans: list[ReadableSpan]) -> list[list[_Read]]:
        spans = sorted(spans, key=lambda s: s.start_time or 0)
        reads: list[_Read | None] = []
        for span in spans:
            attributes = attributes_of(span)
            statement = attributes.get(_names.DB_QUERY_TEXT)
            if attributes.get(_names.DB_ASYNC) is not True or not isinstance(statement, str):
                reads.append(None)  # another kind of span: it ends a run
                continue
            if not _is_plain_read(attributes, statement):
                return []  # a write, a lock, BEGIN/SAVEPOINT...: a transaction whose order matters
            collection = attributes.get(_names.DB_COLLECTION_NAME)
            reads.append(_Read(span, statement, collection if isinstance(collection, str) else ""))
        runs: list[list[_Read]] = []
        current: list[_Read] = []
        for read in reads:
            if read is None:
                runs.append(current)
                current = []
                continue
            if current and (_overlaps(current[-1], read) or any(_may_depend(read, a) for a in current)):
                runs.append(current)
                current = []
            current.append(read)
        runs.append(current)
        return [run for run in runs if len(run) >= self.min_count and len({r.fingerprint for r in run}) >= 2]

    def _finding(self, trace: TraceView, parent_id: int, group: Sequence[_Read]) -> Finding | None:
        total = sum(r.ms for r in group)
        longest = max(r.ms for r in group)
        saving = total - longest
        if saving < self.min_ms or saving <= 0:
            return None
        names = [r.span.name for r in group]
        shapes = "\n".join(r.fingerprint for r in group)
        fingerprint = hashlib.blake2b(shapes.encode(), digest_size=8).hexdigest()
        statement = f"{len(group)} sequential reads: " + ", ".join(names)
        return Finding(
            detector=self.name,
            severity="warning",
            route=trace.route,
            fingerprint=fingerprint,
            statement=statement,
            count=len(group),
            duration_ms=saving,
            trace_id=trace.trace_id,
            anchor_span_id=format(parent_id, "016x"),
            span_ids=tuple(hex_span_id(r.span) for r in group),
            hint=(
                f"these {len(group)} reads ran one after another ({total:.0f} ms) and none appears to "
                f"use another's result: awaited together with asyncio.gather(), each on its own "
                f"session/connection (one AsyncSession runs one statement at a time), they would "
                f"take about {longest:.0f} ms, saving ~{saving:.0f} ms"
            ),
            details={
                "sum_ms": round(total, 3),
                "max_ms": round(longest, 3),
                "saving_ms": round(saving, 3),
                "statements": [r.statement for r in group],
                **_where(group),
            },
        )


def _where(group: Sequence[_Read]) -> dict[str, Any]:
    """The first read's call site (``call_site`` and ``code.*``: where the sequence starts), and
    every read's in ``call_sites``; {} when the spans carry none."""
    sites = [call_site_of(r.span) for r in group]
    first = next((site for site in sites if site is not None), None)
    if first is None:
        return {}
    return {**first.details(), "call_sites": [str(site) if site else "" for site in sites]}


def _is_plain_read(attributes: Mapping[str, Any], statement: str) -> bool:
    operation = attributes.get(_names.DB_OPERATION_NAME)
    if not isinstance(operation, str) or operation.upper() not in ("SELECT", "WITH"):
        return False
    upper = statement.upper()
    if operation.upper() == "WITH" and any(w in upper for w in ("INSERT ", "UPDATE ", "DELETE ")):
        return False
    return not any(lock in upper for lock in _ORDERED)


def _overlaps(earlier: _Read, later: _Read) -> bool:
    return (later.span.start_time or 0) < (earlier.span.end_time or 0)


def _singular(table: str) -> str:
    table = table.rsplit(".", 1)[-1].strip('"`[]')
    if table.endswith("ies"):
        return table[:-3] + "y"
    if table.endswith(("ses", "xes")):
        return table[:-2]
    return table[:-1] if table.endswith("s") else table


def _may_depend(later: _Read, earlier: _Read) -> bool:
    """Whether ``later`` may take a parameter from ``earlier``'s rows (see the module docstring)."""
    if _PARAMETER.search(later.text) is None:
        return False  # no parameter at all: nothing to take from a result
    if " in (" in later.text:
        return True  # keys collected from rows (selectinload, "WHERE id IN (...)")
    if not earlier.collection or not later.collection:
        return True  # tables unknown: cannot tell them apart
    earlier_key = _singular(earlier.collection) + "_id"
    later_key = _singular(later.collection) + "_id"
    return earlier_key in later.text or later_key in earlier.text
