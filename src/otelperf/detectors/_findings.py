"""Where findings go once a detector has them: metrics, a rate-limited log line, an in-process list.

(The span events that show a finding in its trace are written by :mod:`._pipeline`, which owns
the spans.) Everything here is bounded: the recent list, the per-fingerprint table, the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otelperf import _names
from otelperf.detectors._api import Finding

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

logger = logging.getLogger("otelperf.findings")

MAX_RECENT = 1000
MAX_KEYS = 2000
LOG_INTERVAL_S = 60.0
STATEMENT_LABEL_MAX = 120


@dataclass
class FindingStats:
    """What one (detector, route, fingerprint) has cost so far in this process (expected findings
    apart from the others: ``expected`` is the reason, or None)."""

    detector: str
    route: str
    fingerprint: str
    statement: str
    severity: str
    hint: str
    occurrences: int = 0  # findings, one per request in which the detector found it
    total_ms: float = 0.0
    last_trace_id: str = ""
    last_count: int = 0  # how often the statement ran in the latest finding's request
    last_logged: float = -1e18
    logged_occurrences: int = 0  # ``occurrences`` when it was last logged
    expected: str | None = None
    call_site: str = ""  # the latest finding's "app/routes.py:42 in list_authors()", when known


class FindingsSink:
    def __init__(self, meter: Meter | None, *, service_version: str | None = None) -> None:
        self._lock = threading.Lock()
        self._recent: deque[Finding] = deque(maxlen=MAX_RECENT)
        self._stats: dict[tuple[str, str, str, bool], FindingStats] = {}
        # On every point of the findings metrics, so that `otelperf report` and the rules can tell
        # a finding new in this version from a known one, also without resource-to-label conversion.
        self._service_version = service_version
        self.overflow = 0
        self._counter: Any = None
        self._time: Any = None
        self._statements: Any = None
        if meter is not None:
            self.bind_meter(meter)

    def bind_meter(self, meter: Meter | None) -> None:
        """Create the findings counters on ``meter`` (the MeterProvider is built after the sink)."""
        if meter is not None:
            self._counter = meter.create_counter(
                _names.METRIC_FINDINGS, unit="{finding}", description="Findings of otelperf's detectors."
            )
            self._time = meter.create_counter(
                _names.METRIC_FINDINGS_TIME,
                unit="ms",
                description="Request time accounted for by otelperf's findings (latency x count).",
            )
            self._statements = meter.create_counter(
                _names.METRIC_FINDINGS_STATEMENTS,
                unit="{statement}",
                description="Statements (calls) the findings concern, e.g. an N+1's repeats: per "
                "finding, how many a request ran (otelperf report's REGRESSED).",
            )

    def record(self, findings: Iterable[Finding]) -> None:
        now = time.monotonic()
        to_log: list[tuple[tuple[Any, ...], str | None]] = []
        for finding in findings:
            key = (finding.detector, finding.route, finding.fingerprint, finding.expected is not None)
            with self._lock:
                self._recent.append(finding)
                stats = self._stats.get(key)
                if stats is None:
                    if len(self._stats) >= MAX_KEYS:
                        self.overflow += 1
                    else:
                        stats = self._stats[key] = FindingStats(
                            finding.detector,
                            finding.route,
                            finding.fingerprint,
                            finding.statement,
                            finding.severity,
                            finding.hint,
                            expected=finding.expected,
                        )
                if stats is not None:
                    stats.call_site = finding.details.get("call_site") or stats.call_site
                    stats.hint = finding.hint  # the exact fix names lines, which can move
                    stats.occurrences += 1
                    stats.total_ms += finding.duration_ms
                    stats.last_trace_id = finding.trace_id
                    stats.last_count = finding.count
                    if finding.severity == "critical":
                        stats.severity = "critical"
                    if now - stats.last_logged >= LOG_INTERVAL_S:
                        to_log.append((_log_args(stats, now), stats.expected))
                        stats.last_logged = now
                        stats.logged_occurrences = stats.occurrences
            attributes = {
                "detector": finding.detector,
                "route": finding.route,
                "fingerprint": finding.fingerprint,
                "severity": finding.severity,
                **_call_site_label(finding),
                # One statement per fingerprint, so no extra cardinality; shortened for the label.
                "statement": finding.statement[:STATEMENT_LABEL_MAX],
            }
            if finding.expected is not None:
                attributes[_names.FINDINGS_EXPECTED_LABEL] = "true"
            if self._service_version:
                attributes[_names.SERVICE_VERSION] = self._service_version
            if self._counter is not None and self._time is not None:
                self._counter.add(1, attributes)
                self._time.add(finding.duration_ms, attributes)
                if self._statements is not None:
                    self._statements.add(finding.count, attributes)
        for args, expected in to_log:
            if expected is None:
                logger.warning(
                    "otelperf %s [%s] %s: %s x%d in 1 request (finding seen %s; trace %s) - %s", *args
                )
            else:  # known and accepted: said, not warned about
                logger.info(
                    "otelperf %s [%s] %s: %s x%d in 1 request (finding seen %s; trace %s) - %s"
                    " (expected: %s)",
                    *args,
                    expected or "no reason given",
                )

    def recent(self) -> list[Finding]:
        with self._lock:
            return list(self._recent)

    def ranked(self) -> list[FindingStats]:
        """Every fingerprint seen, the most time-consuming first (latency x count)."""
        with self._lock:
            return sorted(self._stats.values(), key=lambda s: s.total_ms, reverse=True)

    def clear(self) -> None:
        with self._lock:
            self._recent.clear()
            self._stats.clear()


def _log_args(stats: FindingStats, now: float) -> tuple[Any, ...]:
    """The log line's values, taken under the sink's lock.

    The line says how often the statement ran in the request it was last found in, and how often
    the finding itself (one per request) was seen: since its previous line (at most one a minute
    per finding), and in all; the hint ends with the line that ran it when it does not name it
    already. For example::

        otelperf n_plus_one [warning] GET /orders: SELECT ... x110 in 1 request
        (finding seen 3 times in the last 2 min, 41 times in all, 5230 ms in all; trace 4bf9...) - ...
    """
    since = stats.occurrences - stats.logged_occurrences
    if stats.logged_occurrences == 0:
        seen = f"{_times(since)} so far, {stats.total_ms:.0f} ms in all"
    else:
        seen = (
            f"{_times(since)} in the last {_duration(now - stats.last_logged)}, "
            f"{_times(stats.occurrences)} in all, {stats.total_ms:.0f} ms in all"
        )
    return (
        stats.detector,
        stats.severity,
        stats.route,
        stats.statement,
        stats.last_count,
        seen,
        stats.last_trace_id,
        _hint_at(stats),
    )


def _hint_at(stats: FindingStats) -> str:
    """The hint, and the line that ran the statement when the hint does not name it already."""
    if not stats.call_site or stats.call_site in stats.hint:
        return stats.hint
    return f"{stats.hint} (at {stats.call_site})"


def _call_site_label(finding: Finding) -> dict[str, str]:
    """The findings metrics' ``call_site`` label, when the finding knows it: the line that ran it,
    one or a few per fingerprint, so few series."""
    call_site = finding.details.get("call_site")
    return {"call_site": str(call_site)[:STATEMENT_LABEL_MAX]} if call_site else {}


def _times(n: int) -> str:
    return "1 time" if n == 1 else f"{n} times"


def _duration(seconds: float) -> str:
    """``"75 s"``, ``"2 min"``, ``"3 h"``: how long ago the previous line was logged."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
