"""Step 6: what the in-process detectors found, ranked from Prometheus as ``otelperf report`` ranks
them, and for the top N+1 and the top budget finding the trace in Jaeger whose span carries it."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from examples.shop.tour.common import (
    BIN,
    BUDGETS_FILE,
    FINDING_EVENT,
    ROOT,
    SERVICE,
    prometheus,
    relative,
    say,
)
from examples.shop.tour.traces import RequestTrace, search, show_links
from otelperf.backends import Span
from otelperf.report import RankedFinding, format_ranked, ranked_from_prometheus


def _event_ms(attrs: Mapping[str, Any]) -> float:
    return float(attrs.get("otelperf.finding.duration_ms", 0.0))


def call_site(attrs: Mapping[str, Any]) -> str:
    """``file:line in function()`` from a finding event's ``code.*`` attributes ("" without them)."""
    path, line = attrs.get("code.file.path"), attrs.get("code.line.number")
    if not path:
        return ""
    function = attrs.get("code.function.name")
    shown = str(path).removeprefix(f"{ROOT}/")
    return f"{shown}:{line}" + (f" in {function}()" if function else "")


def show_waterfall(trace_id: str) -> None:
    """The trace as a waterfall in the terminal, by the command a developer would type."""
    command = [str(BIN / "otelperf"), "trace", trace_id, "--width", "120", "--max-rows", "30"]
    print(f"   the trace as a waterfall ({' '.join(['otelperf', *command[1:]])}):")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    for line in (done.stdout or done.stderr).splitlines():
        print(f"     {line}")


def finding_example(
    row: RankedFinding, start: float, end: float
) -> tuple[RequestTrace, Span, Mapping[str, Any]] | None:
    """The trace of this run where ``row``'s finding cost the most: (trace, the span the finding
    is on, the finding event's attributes); None when Jaeger has no trace carrying it."""
    best: tuple[RequestTrace, Span, Mapping[str, Any]] | None = None
    for trace in search(row.route, start, end):
        for span in trace.spans:
            for event in span.events_named(FINDING_EVENT):
                attrs = event.attributes
                if (
                    attrs.get("otelperf.finding.detector") == row.detector
                    and attrs.get("otelperf.finding.fingerprint") == row.fingerprint
                    and (best is None or _event_ms(attrs) > _event_ms(best[2]))
                ):
                    best = (trace, span, attrs)
    return best


def _best_example(
    candidates: list[RankedFinding], start: float, end: float
) -> tuple[RankedFinding, tuple[RequestTrace, Span, Mapping[str, Any]] | None]:
    """The costliest finding whose example trace shows the most: for budget findings, the first
    whose example carries the profiler's split of its app time (a request whose app time was all
    waiting for the event loop has none); else the costliest."""
    first: tuple[RankedFinding, tuple[RequestTrace, Span, Mapping[str, Any]] | None] | None = None
    for row in candidates:
        example = finding_example(row, start, end)
        if first is None:
            first = (row, example)
        if row.detector != "latency_budget" or (example and example[2].get("otelperf.finding.app_profile")):
            return row, example
    assert first is not None  # candidates is not empty
    return first


def what_detectors_found(instance: str | None, start: float, end: float) -> list[RankedFinding]:
    """Prints this run's findings and an example trace of the top ones; returns the findings."""
    say()
    print("== What the detectors found ==")
    print(
        f"(the app ran with OTELPERF_BUDGETS_FILE={relative(BUDGETS_FILE)}: its per-route p95 "
        "budgets; N+1 and slow-query thresholds are the defaults: OTELPERF_N_PLUS_ONE_MIN_MS=50, "
        "OTELPERF_SLOW_QUERY_MS=100)"
    )
    # A window from just before the app started to now: this run, and nothing older.
    window = f"{math.ceil(time.time() - start) + 5}s"
    matchers = f'job="{SERVICE}"' + (f',service_instance_id="{instance}"' if instance else "")
    rows = ranked_from_prometheus(prometheus.url, window, matchers=matchers)
    print(f"\nThis run's findings, most time-consuming first (Prometheus, {{{matchers}}}, last {window}):")
    if not rows:
        print("   none: no request of this run produced a finding")
    else:
        print("\n".join("   " + line for line in format_ranked(rows, limit=10).splitlines()))
    for detector, title in (("n_plus_one", "N+1"), ("latency_budget", "budget")):
        candidates = [r for r in rows if r.detector == detector and not r.expected][:4]
        if not candidates:
            if rows:
                print(f"\nThe top {title} finding: none in this run")
            continue
        top, example = _best_example(candidates, start, end)
        print(f"\nThe top {title} finding: {top.route}: {top.statement[:100]}")
        if example is None:
            print(f"   (no trace of this run in Jaeger carries it: searched {top.route!r})")
            continue
        trace, span, attrs = example
        count = int(attrs.get("otelperf.finding.count", 0))
        print(
            f"   the costliest occurrence: {count} x, {_event_ms(attrs):.1f} ms, "
            f"on span {span.name!r} ({span.span_id}, {span.duration_ms:.1f} ms)"
        )
        where = call_site(attrs)
        if where:
            print(f"   where: {where}")
        print(f"   hint:  {attrs.get('otelperf.finding.hint', '')}")
        profile = attrs.get("otelperf.finding.app_profile")
        if profile:  # the sampling profiler's split of the request's own ("app") time
            print(f"   where the app time went: {profile}")
        show_links(trace.root.trace_id)
        show_waterfall(trace.root.trace_id)
    print(
        f"\nRerun the ranking (every service, from Prometheus): "
        f"{BIN / 'otelperf'} report --prometheus {prometheus.url} --window 15m"
    )
    return rows
