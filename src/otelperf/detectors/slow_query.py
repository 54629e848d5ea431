"""Slow queries: database spans over their threshold, one finding per statement shape per request.

A statement is slow at ``settings.slow_query_ms`` (warning) and ``settings.slow_query_critical_ms``
(critical). Some routes and statements deserve their own limit (a nightly report may take seconds,
a login lookup should take one): ``overrides`` maps a route (the root span's name, ``"GET
/reports"``), a fingerprint or a normalized statement to a warning threshold in milliseconds.
The most specific wins: statement, then fingerprint, then route. Critical stays at the global
critical level unless the override is higher than it.

    SlowQueryDetector(settings, meter, overrides={"GET /reports": 2000, "SELECT 1 FROM s WHERE t = ?": 10})

On PostgreSQL (unless ``settings.explain`` is off) the first slow finding of a SELECT shape asks
:mod:`otelperf.detectors.explain` for its generic plan, off this thread; later findings of that
shape carry the plan's headline in ``details["plan"]`` (``Seq Scan on orders``) and a hint built
on it ("Seq Scan on orders: add an index on orders(customer_id)"). The finding names the line
that ran the slowest of them (``details["call_site"]``, from the span's ``code.*`` attributes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan

from otelperf import _names
from otelperf.detectors._api import Finding, Severity, TraceView, attributes_of, hex_span_id
from otelperf.detectors._callsites import call_site_of
from otelperf.detectors.fingerprint import statement_fingerprint

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelperf.config import Settings
    from otelperf.detectors.explain import ExplainWorker, PlanSummary

__all__ = ["SlowQueryDetector", "index_hint", "plan_hint"]

GENERIC_HINT = "look at the query plan (EXPLAIN)"

_NAME = r'(?:"(?:[^"]|"")+"|[\w$]+)'
_QUALIFIED = _NAME + r"(?:\." + _NAME + r")*"
# Crude on purpose: a single-table SELECT whose first condition is an equality (or IN) on a column.
_SIMPLE_SELECT_RE = re.compile(
    r"^SELECT .+? FROM (?P<table>" + _QUALIFIED + r")(?: (?:AS )?(?P<alias>" + _NAME + r"))?"
    r" WHERE (?:\(|NOT )*(?P<column>" + _QUALIFIED + r") (?:=|IN) "
)
_NOT_SIMPLE = (" JOIN ", "(SELECT ", " UNION ", " FROM (")


@lru_cache(maxsize=1024)
def _index_target(normalized: str) -> tuple[str, str] | None:
    """(table, column) of a single-table SELECT whose first condition is an equality, else None."""
    if not normalized.startswith("SELECT ") or any(marker in normalized for marker in _NOT_SIMPLE):
        return None
    match = _SIMPLE_SELECT_RE.match(normalized)
    if match is None:
        return None
    table, alias, column = match.group("table", "alias", "column")
    if alias in ("WHERE", None):
        alias = table.rsplit(".", 1)[-1]
    qualifier, _, name = column.rpartition(".")
    if qualifier and qualifier not in (table, alias):
        return None
    return table, name


def index_hint(normalized: str) -> str:
    """'check the plan: an index on T(X) may help' when the statement says that much, else EXPLAIN.

    >>> index_hint("SELECT * FROM orders WHERE customer_id = ? LIMIT ?")
    'check the plan: an index on orders(customer_id) may help'
    """
    target = _index_target(normalized)
    if target is None:
        return GENERIC_HINT
    return f"check the plan: an index on {target[0]}({target[1]}) may help"


def _unquoted(name: str) -> str:
    last = name.rsplit(".", 1)[-1]
    return last[1:-1].replace('""', '"') if last.startswith('"') and last.endswith('"') else last


def plan_hint(plan: PlanSummary, normalized: str) -> str:
    """The fix hint once the plan is known.

    >>> plan = PlanSummary("Limit", "Seq Scan on orders", ("orders",))
    >>> plan_hint(plan, "SELECT * FROM orders WHERE customer_id = ?")
    'Seq Scan on orders: add an index on orders(customer_id)'
    """
    target = _index_target(normalized)
    if plan.seq_scans:
        if target is not None and _unquoted(target[0]) in plan.seq_scans:
            return f"Seq Scan on {_unquoted(target[0])}: add an index on {target[0]}({target[1]})"
        return f"{plan.headline}: an index on the columns it is filtered or joined by may help"
    return f"plan: {plan.headline} (no sequential scan): check how many rows it reads and returns"


def statement_of(span: ReadableSpan) -> str | None:
    """The span's query text (the stable name, else the legacy one), when it is a string."""
    attributes = attributes_of(span)
    text = attributes.get(_names.DB_QUERY_TEXT)
    if text is None:
        text = attributes.get(_names.DB_STATEMENT_LEGACY)
    return text if isinstance(text, str) and text else None


class _Slow:
    __slots__ = ("critical", "normalized", "spans", "threshold", "total_ms", "worst", "worst_ms")

    def __init__(self, normalized: str, threshold: float, critical: float) -> None:
        self.normalized = normalized
        self.threshold = threshold
        self.critical = critical
        self.spans: list[ReadableSpan] = []
        self.total_ms = 0.0
        self.worst: ReadableSpan | None = None
        self.worst_ms = -1.0


class SlowQueryDetector:
    """Database spans slower than their threshold; one finding per fingerprint per request."""

    name = "slow_query"

    def __init__(
        self,
        settings: Settings,
        meter: Meter | None = None,
        *,
        overrides: Mapping[str, float] | None = None,
        explainer: ExplainWorker | None = None,
    ) -> None:
        del meter  # findings are counted by the sink
        # EXPLAIN of slow PostgreSQL SELECTs: the process's one worker unless one is given, made
        # (and its module imported) at the first slow PostgreSQL statement: most processes, and
        # every test suite on SQLite, never need it.
        self._explain = settings.explain
        self._explainer = explainer
        self.warning_ms = float(settings.slow_query_ms)
        self.critical_ms = float(settings.slow_query_critical_ms)
        self.overrides = {str(k): float(v) for k, v in (overrides or {}).items()}
        # No statement below this can be slow under any rule: such spans are skipped before their
        # statement is even looked at.
        self._floor = min([self.warning_ms, *self.overrides.values()])

    def _threshold(self, route_ms: float, normalized: str, fingerprint: str) -> float:
        if not self.overrides:
            return route_ms
        value = self.overrides.get(normalized)
        if value is None:
            value = self.overrides.get(fingerprint)
        return route_ms if value is None else value

    @property
    def explainer(self) -> ExplainWorker | None:
        """The EXPLAIN worker (None when ``settings.explain`` is off)."""
        if not self._explain:
            return None
        if self._explainer is None:
            from otelperf.detectors.explain import shared_worker

            self._explainer = shared_worker()
        return self._explainer

    def analyze(self, trace: TraceView) -> list[Finding]:
        db_spans = trace.spans_of("db")
        if not db_spans:
            return []  # most requests of most services: nothing to look at
        floor = self._floor
        route = trace.route
        route_ms = self.overrides.get(route, self.warning_ms)
        root = trace.root
        by_fingerprint: dict[str, _Slow] = {}
        for span in db_spans:
            start, end = span.start_time, span.end_time
            if start is None or end is None or span is root:
                continue
            ms = (end - start) / 1e6
            if ms < floor:
                continue
            text = statement_of(span)
            if text is None:
                continue
            normalized, fingerprint = statement_fingerprint(text)
            slow = by_fingerprint.get(fingerprint)
            if slow is None:
                threshold = self._threshold(route_ms, normalized, fingerprint)
                critical = max(self.critical_ms, threshold)
                slow = by_fingerprint[fingerprint] = _Slow(normalized, threshold, critical)
            if ms < slow.threshold:
                continue
            slow.spans.append(span)
            slow.total_ms += ms
            if ms > slow.worst_ms:
                slow.worst, slow.worst_ms = span, ms
        findings: list[Finding] = []
        if not by_fingerprint:
            return findings
        trace_id = trace.trace_id
        for fingerprint, slow in by_fingerprint.items():
            if slow.worst is None:
                continue
            severity: Severity = "critical" if slow.worst_ms >= slow.critical else "warning"
            worst_attributes = attributes_of(slow.worst)
            db_system = worst_attributes.get(_names.DB_SYSTEM_NAME)
            plan = None
            if self._explain and db_system == "postgresql" and self.explainer is not None:
                plan = self.explainer.plan_for(worst_attributes, fingerprint, slow.normalized)
            details = {
                "max_ms": round(slow.worst_ms, 3),
                "threshold_ms": slow.threshold,
                "critical_ms": slow.critical,
                "db_system": db_system,
            }
            if plan is not None:
                details["plan"] = plan.headline
                details["plan_root"] = plan.root
            site = call_site_of(slow.worst, worst_attributes)  # the slowest run's line
            if site is not None:
                details.update(site.details())
            findings.append(
                Finding(
                    detector=self.name,
                    severity=severity,
                    route=route,
                    fingerprint=fingerprint,
                    statement=slow.normalized,
                    count=len(slow.spans),
                    duration_ms=slow.total_ms,
                    trace_id=trace_id,
                    anchor_span_id=hex_span_id(slow.worst),
                    span_ids=tuple(hex_span_id(s) for s in slow.spans),
                    hint=index_hint(slow.normalized) if plan is None else plan_hint(plan, slow.normalized),
                    details=details,
                )
            )
        return findings
