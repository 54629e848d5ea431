"""``otelperf report``: the findings ranked by the time they cost (latency x count).

Reads Prometheus, where every process's findings meet (``otelperf_findings_total`` and
``otelperf_findings_time_milliseconds_total``), so it works for a fleet of workers and after the
processes are gone. In a process, :func:`format_ranked` prints the same table from the detector sink.

Lifecycle (:mod:`.lifecycle`): with ``service.version`` on the findings (label ``service_version``),
each finding of the current version is NEW (no earlier version had it), REGRESSED (statements or
time per request up against the earlier versions) or KNOWN; expected findings say so instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from otelperf.backends import Prometheus


@dataclass(frozen=True)
class RankedFinding:
    detector: str
    severity: str
    route: str
    fingerprint: str
    statement: str
    occurrences: float
    total_ms: float
    statements: float = 0.0  # statements the findings concern (an N+1's repeats), summed
    version: str = ""  # service_version; "" when the service sets none
    expected: bool = False
    status: str = ""  # NEW | KNOWN | REGRESSED (lifecycle.mark); "" when there are no versions
    call_site: str = ""  # "app/routes.py:42 in list_authors()": the line that ran it, when known


def growth(metric: str, select: str, window: str, labels: str) -> str:
    """How much a counter grew over the window, exactly, also for series born inside it.

    ``increase()`` extrapolates, and reads 0 for a series whose first scrape already holds its final
    value (a short process, a rare finding): the value now minus the value a window ago, or the
    whole value for series younger than the window. Each process has its own series
    (service.instance.id), so counter resets do not arise.
    """
    series = f"{metric}{select}"
    return (
        f"sum by ({labels}) ((last_over_time({series}[{window}]) - {series} offset {window})"
        f" or last_over_time({series}[{window}]))"
    )


def ranked_from_prometheus(
    prometheus: str,
    window: str = "1h",
    timeout: float = 5.0,
    matchers: str = "",
    *,
    version: str | None = None,
    history: str = "7d",
) -> list[RankedFinding]:
    """``matchers``: extra PromQL label matchers for both series, e.g. ``'job="shop"'``.

    With versions on the findings, only the current version's (``version``, else the newest one
    seen in the window) are ranked, each marked NEW/KNOWN/REGRESSED against the other versions'
    findings of the last ``history``.

    Raises :class:`~otelperf.backends.BackendError` (an OSError) when Prometheus cannot be read,
    :class:`~otelperf.backends.PrometheusQueryError` when it refuses the query.
    """
    from otelperf.report import lifecycle

    prom = Prometheus(prometheus, timeout)
    labels = "detector, severity, route, fingerprint, statement, service_version, expected, call_site"
    select = f"{{{matchers}}}" if matchers else ""
    times = prom.query(growth("otelperf_findings_time_milliseconds_total", select, window, labels))
    counts = prom.query(growth("otelperf_findings_total", select, window, labels))
    statements = prom.query(growth("otelperf_findings_statements_total", select, window, labels))
    count_of = {tuple(sorted(r.labels.items())): r.value for r in counts}
    statements_of = {tuple(sorted(r.labels.items())): r.value for r in statements}
    out = []
    for row in times:
        m = row.labels
        key = tuple(sorted(m.items()))
        out.append(
            RankedFinding(
                m.get("detector", ""),
                m.get("severity", ""),
                m.get("route", ""),
                m.get("fingerprint", ""),
                m.get("statement", ""),
                count_of.get(key, 0.0),
                row.value,
                statements_of.get(key, 0.0),
                m.get("service_version", ""),
                m.get("expected", "") == "true",
                call_site=m.get("call_site", ""),
            )
        )
    rows = [r for r in out if r.occurrences > 0 or r.total_ms > 0]
    versions = {r.version for r in rows if r.version}
    if versions:
        current = version or lifecycle.newest_version(prom, matchers, window) or max(versions)
        rows = [r for r in rows if r.version in (current, "")]
        earlier = lifecycle.history(prom, matchers, current, history)
        rows = lifecycle.mark(rows, earlier)
    return sorted(rows, key=lambda r: r.total_ms, reverse=True)


def format_ranked(rows: Sequence[Any], limit: int = 20) -> str:
    """A table of findings, most costly first (rows: RankedFinding or the sink's FindingStats); under
    a finding whose call site is known, the line that ran it."""
    if not rows:
        return "no findings"
    shown = list(rows)[:limit]
    # The lifecycle column when the findings carry versions; "expected" for accepted ones.
    marks = [_mark(row) for row in shown]
    width = max((len(m) for m in marks), default=0)
    width = max(width, len("status")) if width else 0
    status = f"{'status':<{width}}  " if width else ""
    lines = [
        f"{'time ms':>10} {'count':>7}  {status}{'detector':<17} {'severity':<8} {'route':<28} statement"
    ]
    for row, mark in zip(shown, marks, strict=True):
        occurrences = getattr(row, "occurrences", 0)
        cell = f"{mark:<{width}}  " if width else ""
        lines.append(
            f"{row.total_ms:>10.0f} {occurrences:>7.0f}  {cell}{row.detector:<17} {row.severity:<8} "
            f"{row.route[:28]:<28} {row.statement[:90]}"
        )
        call_site = getattr(row, "call_site", "")
        if call_site:
            lines.append(f"{'':>10} {'':>7}  at {call_site}")
    versions = sorted({v for v in (getattr(r, "version", "") for r in shown) if v})
    if versions:
        lines.append(
            f"version {', '.join(versions)}: NEW = no earlier version had it; REGRESSED = more "
            "statements or time per request than in earlier versions"
        )
    return "\n".join(lines)


def _mark(row: Any) -> str:
    status = str(getattr(row, "status", "") or "")
    expected = getattr(row, "expected", None)
    # RankedFinding: a bool; the sink's FindingStats: the reason (maybe ""), None when not expected.
    if expected is True or isinstance(expected, str):
        return f"{status} expected".strip() if status else "expected"
    return status
