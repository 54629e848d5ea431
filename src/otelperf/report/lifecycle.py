"""NEW, KNOWN or REGRESSED: a finding of the current version against the earlier versions' findings.

Every findings series carries ``service_version`` (the process's ``service.version``). A finding
(detector, route, fingerprint) of the current version is

- NEW when no other version had it in the history window (default 7 days);
- REGRESSED when it costs a request more than in the earlier versions together: statements per
  request (an N+1's repeats) up by more than :data:`STATEMENTS_TOLERANCE` and at least one, or
  time per request up by more than :data:`TIME_TOLERANCE` and at least :data:`TIME_MIN_MS`;
- KNOWN otherwise.

Per request means per finding: a detector reports a fingerprint at most once per request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otelperf.backends import Prometheus
    from otelperf.report import RankedFinding

STATEMENTS_TOLERANCE = 0.20
TIME_TOLERANCE = 0.50  # time per request is noisier than a count
TIME_MIN_MS = 5.0

Key = tuple[str, str, str]  # detector, route, fingerprint


@dataclass(frozen=True)
class Earlier:
    """What the earlier versions' findings of one key cost, all processes together."""

    occurrences: float
    total_ms: float
    statements: float
    versions: tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def newest_version(prom: Prometheus, matchers: str, window: str) -> str | None:
    """The version whose findings were first seen last in the window: the latest deployment."""
    select = ",".join(m for m in (matchers, 'service_version!=""') if m)
    first_seen = f"min_over_time(timestamp(otelperf_findings_total{{{select}}})[{window}:15s])"
    rows = prom.query(f"min by (service_version) ({first_seen})")
    if not rows:
        return None
    return max(rows, key=lambda r: (r.value, r.labels.get("service_version", ""))).labels.get(
        "service_version"
    )


def history(prom: Prometheus, matchers: str, current: str, window: str) -> dict[Key, Earlier]:
    """The other versions' findings of the last ``window`` (their counters' last values)."""
    select = ",".join(
        m
        for m in (
            matchers,
            f'service_version!="{_escape(current)}"',
            'service_version!=""',
            'expected!="true"',
        )
        if m
    )
    by = "detector, route, fingerprint, service_version"
    values: dict[str, dict[tuple[str, ...], float]] = {}
    for name in (
        "otelperf_findings_total",
        "otelperf_findings_time_milliseconds_total",
        "otelperf_findings_statements_total",
    ):
        rows = prom.query(f"sum by ({by}) (last_over_time({name}{{{select}}}[{window}]))")
        values[name] = {
            (
                r.labels.get("detector", ""),
                r.labels.get("route", ""),
                r.labels.get("fingerprint", ""),
                r.labels.get("service_version", ""),
            ): r.value
            for r in rows
        }
    return combine(
        values["otelperf_findings_total"],
        values["otelperf_findings_time_milliseconds_total"],
        values["otelperf_findings_statements_total"],
    )


def combine(
    counts: Mapping[tuple[str, ...], float],
    times: Mapping[tuple[str, ...], float],
    statements: Mapping[tuple[str, ...], float],
) -> dict[Key, Earlier]:
    """Per (detector, route, fingerprint), the earlier versions summed (keys end in the version)."""
    out: dict[Key, Earlier] = {}
    for key, count in counts.items():
        detector, route, fingerprint, version = key
        k = (detector, route, fingerprint)
        before = out.get(k, Earlier(0.0, 0.0, 0.0, ()))
        out[k] = Earlier(
            before.occurrences + count,
            before.total_ms + times.get(key, 0.0),
            before.statements + statements.get(key, 0.0),
            tuple(sorted({*before.versions, version})),
        )
    return out


def status(now: RankedFinding, earlier: Earlier | None) -> str:
    if earlier is None or earlier.occurrences <= 0:
        return "NEW"
    if now.occurrences <= 0:
        return "KNOWN"
    if now.statements > 0 and earlier.statements > 0:
        before, after = earlier.statements / earlier.occurrences, now.statements / now.occurrences
        if after - before > max(STATEMENTS_TOLERANCE * before, 1.0):
            return "REGRESSED"
    before_ms, after_ms = earlier.total_ms / earlier.occurrences, now.total_ms / now.occurrences
    if after_ms - before_ms > max(TIME_TOLERANCE * before_ms, TIME_MIN_MS):
        return "REGRESSED"
    return "KNOWN"


def mark(rows: Sequence[RankedFinding], earlier: Mapping[Key, Earlier]) -> list[RankedFinding]:
    """Rows with ``status`` set; rows without a version stay unmarked."""
    out: list[RankedFinding] = []
    for row in rows:
        if not row.version:
            out.append(row)
            continue
        found = earlier.get((row.detector, row.route, row.fingerprint))
        out.append(dataclasses.replace(row, status=status(row, found)))
    return out
