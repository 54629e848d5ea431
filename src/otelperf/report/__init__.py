"""``otelperf report``: the findings ranked by the time they cost (latency x count).

Reads Prometheus, where every process's findings meet (``otelperf_findings_total`` and
``otelperf_findings_time_milliseconds_total``), so it works for a fleet of workers and after the
processes are gone. In a process, :func:`format_ranked` prints the same table from the detector sink.
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
    prometheus: str, window: str = "1h", timeout: float = 5.0, matchers: str = ""
) -> list[RankedFinding]:
    """``matchers``: extra PromQL label matchers for both series, e.g. ``'job="shop"'``.

    Raises :class:`~otelperf.backends.BackendError` (an OSError) when Prometheus cannot be read,
    :class:`~otelperf.backends.PrometheusQueryError` when it refuses the query.
    """
    prom = Prometheus(prometheus, timeout)
    labels = "detector, severity, route, fingerprint, statement, call_site"
    select = f"{{{matchers}}}" if matchers else ""
    times = prom.query(growth("otelperf_findings_time_milliseconds_total", select, window, labels))
    counts = prom.query(growth("otelperf_findings_total", select, window, labels))
    count_of = {tuple(sorted(r.labels.items())): r.value for r in counts}
    out = []
    for row in times:
        m = row.labels
        out.append(
            RankedFinding(
                m.get("detector", ""),
                m.get("severity", ""),
                m.get("route", ""),
                m.get("fingerprint", ""),
                m.get("statement", ""),
                count_of.get(tuple(sorted(m.items())), 0.0),
                row.value,
                m.get("call_site", ""),
            )
        )
    return sorted(
        (r for r in out if r.occurrences > 0 or r.total_ms > 0), key=lambda r: r.total_ms, reverse=True
    )


def format_ranked(rows: Sequence[Any], limit: int = 20) -> str:
    """A table of findings, most costly first (rows: RankedFinding or the sink's FindingStats); under
    a finding whose call site is known, the line that ran it."""
    if not rows:
        return "no findings"
    lines = [f"{'time ms':>10} {'count':>7}  {'detector':<15} {'severity':<8} {'route':<28} statement"]
    for row in list(rows)[:limit]:
        occurrences = getattr(row, "occurrences", 0)
        lines.append(
            f"{row.total_ms:>10.0f} {occurrences:>7.0f}  {row.detector:<15} {row.severity:<8} "
            f"{row.route[:28]:<28} {row.statement[:90]}"
        )
        call_site = getattr(row, "call_site", "")
        if call_site:
            lines.append(f"{'':>10} {'':>7}  at {call_site}")
    return "\n".join(lines)
