"""The report page: one self-contained HTML document (inline CSS and SVG, no script, no fetch).

Everything that came from the backends (routes, statements, service names) is escaped here; the
SVG module escapes its own labels.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from html import escape

from otelperf.report.html.flame import section as flame_section
from otelperf.report.html.model import BaselineRoute, Finding, ReportData, RouteReport
from otelperf.report.html.svg import PALETTE, Line, Threshold, has_data, line_chart
from otelperf.report.html.waterfall_svg import MAX_WATERFALLS, finding_waterfalls

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.9em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2a7d2a;font-weight:600}.bad{color:#c62828;font-weight:600}.muted{color:#777}
.empty{color:#777;font-style:italic}.note{background:#fff8e1;border:1px solid #f0d890;padding:6px 10px}
code{font-size:.85em;word-break:break-all;white-space:pre-wrap}
svg.chart{display:block;margin:8px 0 20px;max-width:100%;height:auto}
svg.flame{display:block;margin:8px 0 20px;max-width:100%;height:auto;font-size:11px}
.chart-title{font-weight:600;font-size:13px}.xtick,.ytick,.legend,.axis-label{font-size:11px;fill:#444}
.no-data{font-size:14px;fill:#777;font-style:italic}
figure.waterfall{margin:8px 0 24px;overflow-x:auto}figure.waterfall figcaption{font-size:.9em;color:#444}
svg.waterfall{display:block;font-family:ui-monospace,Menlo,Consolas,monospace}.hint{font-size:11px}
"""


def _ms(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "&ndash;" if value is None else f"{value:.2%}"


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    """``rows`` are already-escaped HTML cells; a cell starting with ``\\x01`` is numeric."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c[1:]}</td>' if c.startswith("\x01") else f"<td>{c}</td>" for c in row
        )
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _n(text: str) -> str:
    return "\x01" + text


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def _trace_link(data: ReportData, trace_id: str | None, text: str = "") -> str:
    if not trace_id:
        return '<span class="muted">&ndash;</span>'
    url = data.trace_url(trace_id)
    return f'<a class="trace" href="{escape(url)}">{escape(text or trace_id[:16])}</a>'


def _verdict(route: RouteReport) -> str:
    verdict = route.verdict
    cls = {"within budget": "ok", "over budget": "bad"}.get(verdict, "muted")
    why = "; ".join(route.breaches())
    return f'<span class="{cls}">{escape(verdict)}</span>' + (f"<br>{escape(why)}" if why else "")


def summary(data: ReportData) -> str:
    if not data.routes:
        return _empty("No HTTP requests were recorded in this window (http_server_request_duration_seconds).")
    rows = []
    for r in data.routes:
        b = r.budget
        rows.append(
            [
                f"<code>{escape(r.route)}</code>",
                _verdict(r),
                _n(f"{r.requests:,.0f}"),
                _n(f"{r.rps:.2f}"),
                _n(_ms(r.p50_ms)),
                _n(f"{_ms(r.p95_ms)} / {_ms(b.p95_ms if b else None)}"),
                _n(f"{_ms(r.p99_ms)} / {_ms(b.p99_ms if b else None)}"),
                _n(f"{_pct(r.error_ratio)} / {_pct(b.error_rate if b else None)}"),
                _trace_link(data, r.slowest_trace_id),
            ]
        )
    headers = ["route", "verdict", "requests", "req/s", "p50 ms", "p95 ms / budget", "p99 ms / budget"]
    headers += ["errors / budget", "slow trace"]
    over = sum(1 for r in data.routes if r.verdict == "over budget")
    head = f"<p><strong>{over} of {len(data.routes)} routes over budget.</strong> "
    head += f"Throughput of all routes: {data.total_rps:.2f} req/s"
    if data.service_min_rps:
        ok = data.total_rps >= data.service_min_rps
        head += f' (floor {data.service_min_rps:g} req/s: <span class="{"ok" if ok else "bad"}">'
        head += f"{'met' if ok else 'not met'}</span>)"
    return head + ".</p>" + _table(headers, rows, "summary")


def latency_charts(data: ReportData) -> str:
    if not data.routes:
        return _empty("No request latencies in this window.")
    out = []
    for i, r in enumerate(data.routes):
        lines = [
            Line(label, r.latency.get(label, []), PALETTE[j]) for j, label in enumerate(("p50", "p95", "p99"))
        ]
        if not has_data(lines):
            out.append(_empty(f"{r.route}: no latency data in this window."))
            continue
        thresholds = []
        if r.budget and r.budget.p95_ms is not None:
            thresholds.append(Threshold(f"p95 budget {r.budget.p95_ms:g} ms", r.budget.p95_ms, "p95"))
        if r.budget and r.budget.p99_ms is not None:
            thresholds.append(
                Threshold(f"p99 budget {r.budget.p99_ms:g} ms", r.budget.p99_ms, "p99", "#b71c1c")
            )
        title = f"{r.route}: latency percentiles"
        out.append(f'<div class="route-chart" id="route-{i}">')
        out.append(
            line_chart(lines, title=title, unit="ms", start=data.start, end=data.end, thresholds=thresholds)
        )
        out.append("</div>")
    return "\n".join(out)


def _per_route_chart(data: ReportData, attr: str, title: str, unit: str, scale: float = 1.0) -> str:
    lines = []
    for i, r in enumerate(data.routes):
        points = [(t, None if v is None else v * scale) for t, v in getattr(r, attr)]
        lines.append(Line(r.route, points, PALETTE[i % len(PALETTE)]))
    if not has_data(lines):
        return _empty(f"{title}: no data in this window.")
    return line_chart(lines, title=title, unit=unit, start=data.start, end=data.end)


def traffic(data: ReportData) -> str:
    if not data.routes:
        return _empty("No requests in this window.")
    return _per_route_chart(data, "throughput", "Throughput per route", "req/s") + _per_route_chart(
        data, "error_rate", "Error rate per route (5xx)", "%", 100.0
    )


def client_side(data: ReportData) -> str:
    lines = [
        Line(label, data.client_latency.get(label, []), PALETTE[j])
        for j, label in enumerate(("p50", "p95", "p99"))
    ]
    if not has_data(lines):
        return _empty(
            "No client-side latency in this window (otelperf_loadtest_request_duration_seconds: "
            "run the load test with otelperf's Locust integration to see it)."
        )
    title = f"Load generator: request latency ({data.client_requests:,.0f} requests)"
    return line_chart(lines, title=title, unit="ms", start=data.start, end=data.end)


@dataclass
class _Fingerprint:
    statement: str
    count: float = 0.0
    total_ms: float = 0.0
    detectors: set[str] = field(default_factory=set)
    trace_ids: set[str] = field(default_factory=set)


def database(data: ReportData) -> str:
    slow: dict[str, _Fingerprint] = {}
    for f in data.findings:
        if f.detector in ("slow_query", "n_plus_one") and f.fingerprint:
            entry = slow.setdefault(f.fingerprint, _Fingerprint(f.statement))
            entry.count += f.occurrences
            entry.total_ms += f.total_ms
            entry.detectors.add(f.detector)
            entry.trace_ids.update(f.trace_ids)
    out = ["<h3>Slowest query fingerprints (from the detectors' findings)</h3>"]
    if slow:
        rows = []
        for fp, e in sorted(slow.items(), key=lambda kv: -kv[1].total_ms)[:20]:
            links = " ".join(_trace_link(data, t) for t in sorted(e.trace_ids)[:3]) or _trace_link(data, None)
            rows.append(
                [
                    f"<code>{escape(e.statement)}</code>",
                    escape(", ".join(sorted(e.detectors))),
                    _n(f"{e.count:,.0f}"),
                    _n(f"{e.total_ms:,.1f}"),
                    f"<code>{escape(fp)}</code>",
                    links,
                ]
            )
        out.append(
            _table(
                ["statement", "detectors", "findings", "time ms", "fingerprint", "traces"],
                rows,
                "fingerprints",
            )
        )
    else:
        out.append(_empty("No slow-query or N+1 findings in this window."))
    out.append("<h3>Database operations by total time (span metrics)</h3>")
    if data.db_operations:
        rows = [
            [
                f"<code>{escape(op.name)}</code>",
                escape(op.system),
                _n(f"{op.calls:,.0f}"),
                _n(f"{op.total_ms:,.1f}"),
                _n(f"{op.avg_ms:,.2f}"),
            ]
            for op in data.db_operations[:20]
        ]
        out.append(_table(["operation", "system", "calls", "total ms", "avg ms"], rows, "db-operations"))
    else:
        out.append(_empty("No database spans in this window (traces_span_metrics_duration_seconds)."))
    return "\n".join(out)


def _finding_marks(f: Finding) -> str:
    """Under a finding's statement: the line that ran it, and whether it is expected."""
    out = ""
    if f.call_site:
        out += f"<br><small>at <code>{escape(f.call_site)}</code></small>"
    if f.expected:
        out += " <small>(expected: no alert)</small>"
    return out


def findings(data: ReportData) -> str:
    if not data.findings:
        return _empty("No findings in this window (otelperf_findings_total).")
    by_detector: dict[str, list[Finding]] = defaultdict(list)
    for f in data.findings:
        by_detector[f.detector].append(f)
    out = []
    waterfalls_left = [MAX_WATERFALLS]
    for detector, items in sorted(by_detector.items(), key=lambda kv: -sum(f.total_ms for f in kv[1])):
        total_ms = sum(f.total_ms for f in items)
        count = sum(f.occurrences for f in items)
        out.append(f"<h3>{escape(detector)}: {count:,.0f} findings, {total_ms:,.0f} ms</h3>")
        rows = []
        for f in items:
            links = " ".join(_trace_link(data, t) for t in f.trace_ids) or _trace_link(data, None)
            rows.append(
                [
                    escape(f.severity),
                    f"<code>{escape(f.route)}</code>",
                    f"<code>{escape(f.statement)}</code>" + _finding_marks(f),
                    _n(f"{f.occurrences:,.0f}"),
                    _n(f"{f.total_ms:,.1f}"),
                    links,
                ]
            )
        out.append(
            _table(["severity", "route", "statement", "count", "time ms", "example traces"], rows, "findings")
        )
        out.append(finding_waterfalls(items, data.traces, waterfalls_left))
    return "\n".join(out)


def _change(before: float | None, now: float | None) -> str:
    if before is None or now is None:
        return "&ndash;"
    if before == 0:
        return "&ndash;" if now == 0 else "new"
    return f"{(now - before) / before:+.1%}"


def baseline(data: ReportData) -> str:
    if data.baseline is None:
        return _empty("No baseline given (--baseline FILE).")
    now = {r.route: r for r in data.routes}
    routes = sorted(set(data.baseline) | set(now))
    if not routes:
        return _empty("The baseline has no routes, and this window has no requests.")
    rows = []
    for route in routes:
        before = data.baseline.get(route, BaselineRoute())
        r = now.get(route)
        pairs = [
            ("p50 ms", before.p50_ms, r.p50_ms if r else None, _ms),
            ("p95 ms", before.p95_ms, r.p95_ms if r else None, _ms),
            ("p99 ms", before.p99_ms, r.p99_ms if r else None, _ms),
            ("req/s", before.rps, r.rps if r else None, _ms),
            ("error rate", before.error_rate, r.error_ratio if r else None, _pct),
        ]
        for i, (metric, b, n, fmt) in enumerate(pairs):
            label = f"<code>{escape(route)}</code>" if i == 0 else ""
            rows.append(
                [label, escape(metric), _n(fmt(b)), _n(fmt(n)), _n(_change(b, n)), _judge(metric, b, n)]
            )
    source = f"<p>Baseline: <code>{escape(data.baseline_source)}</code></p>" if data.baseline_source else ""
    note = (
        '<p class="muted">Verdicts use <code>otelperf baseline compare</code>\'s default tolerances: '
        "a change counts only when it exceeds both the relative tolerance and the absolute floor.</p>"
    )
    return (
        source + note + _table(["route", "metric", "baseline", "now", "change", "verdict"], rows, "baseline")
    )


_METRIC_KEYS = {
    "p50 ms": "p50_ms",
    "p95 ms": "p95_ms",
    "p99 ms": "p99_ms",
    "req/s": "rps",
    "error rate": "error_rate",
}


def _judge(metric: str, before: float | None, now: float | None) -> str:
    """The verdict ``otelperf baseline compare`` would give (same tolerances)."""
    from otelperf.baseline.model import DEFAULT_MIN_CHANGE, DEFAULT_TOLERANCE, verdict

    if before is None or now is None:
        return '<span class="muted">&ndash;</span>'
    key = _METRIC_KEYS[metric]
    result = verdict(key, before, now, DEFAULT_TOLERANCE[key], DEFAULT_MIN_CHANGE[key])
    cls = {"REGRESSED": "bad", "improved": "ok"}.get(result, "muted")
    return f'<span class="{cls}">{escape(result)}</span>'


def render(data: ReportData) -> str:
    def utc(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))

    service = data.service or "all services"
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in data.notes)
    sections = [
        ("summary", "Summary: routes against their budgets", summary(data)),
        ("latency", "Latency percentiles per route", latency_charts(data)),
        ("traffic", "Throughput and error rate", traffic(data)),
        ("client", "Client-side latency (load generator)", client_side(data)),
        ("database", "Slowest database work", database(data)),
        ("findings", "Findings by detector", findings(data)),
        ("apptime", "Where app time goes (over-budget routes)", flame_section(data.flames)),
        ("baseline", "Baseline comparison", baseline(data)),
    ]
    body = "\n".join(
        f'<section id="{sid}">\n<h2>{escape(title)}</h2>\n{html}\n</section>' for sid, title, html in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>otelperf report: {escape(service)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>otelperf report: {escape(service)}</h1>
<p class="muted">{utc(data.start)} &ndash; {utc(data.end)} ({(data.end - data.start) / 60:.1f} min) &middot;
Prometheus <code>{escape(data.prometheus)}</code> &middot; Jaeger <code>{escape(data.jaeger)}</code> &middot;
generated {utc(time.time())}</p>
{notes}
</header>
{body}
</body>
</html>
"""
