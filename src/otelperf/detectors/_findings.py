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
    """What one (detector, route, fingerprint) has cost so far in this process."""

    detector: str
    route: str
    fingerprint: str
    statement: str
    severity: str
    hint: str
    occurrences: int = 0
    total_ms: float = 0.0
    last_trace_id: str = ""
    last_logged: float = -1e18


class FindingsSink:
    def __init__(self, meter: Meter | None) -> None:
        self._lock = threading.Lock()
        self._recent: deque[Finding] = deque(maxlen=MAX_RECENT)
        self._stats: dict[tuple[str, str, str], FindingStats] = {}
        self.overflow = 0
        self._counter: Any = None
        self._time: Any = None
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

    def record(self, findings: Iterable[Finding]) -> None:
        now = time.monotonic()
        to_log: list[FindingStats] = []
        for finding in findings:
            key = (finding.detector, finding.route, finding.fingerprint)
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
                        )
                if stats is not None:
                    stats.occurrences += 1
                    stats.total_ms += finding.duration_ms
                    stats.last_trace_id = finding.trace_id
                    if finding.severity == "critical":
                        stats.severity = "critical"
                    if now - stats.last_logged >= LOG_INTERVAL_S:
                        stats.last_logged = now
                        to_log.append(stats)
            attributes = {
                "detector": finding.detector,
                "route": finding.route,
                "fingerprint": finding.fingerprint,
                "severity": finding.severity,
                # One statement per fingerprint, so no extra cardinality; shortened for the label.
                "statement": finding.statement[:STATEMENT_LABEL_MAX],
            }
            if self._counter is not None and self._time is not None:
                self._counter.add(1, attributes)
                self._time.add(finding.duration_ms, attributes)
        for stats in to_log:
            logger.warning(
                "otelperf %s [%s] %s: %s (seen %d times, %.0f ms in all; trace %s) - %s",
                stats.detector,
                stats.severity,
                stats.route,
                stats.statement,
                stats.occurrences,
                stats.total_ms,
                stats.last_trace_id,
                stats.hint,
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
