"""The baseline file and the noise-aware comparison against it (pure; no I/O but read/write).

A route regresses on a metric only when the change in the bad direction is larger than BOTH its
relative tolerance (default 20 %) and its absolute floor (e.g. 5 ms): 2 ms -> 3 ms is +50 % but
1 ms, well inside the noise of a shared machine, so it is "ok". Each side is the median of several
runs, so one hiccup does not flip the verdict.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "otelperf-baseline/1"

# The compared metrics, in table order; all but rps are better lower.
METRICS = ("p50_ms", "p95_ms", "p99_ms", "rps", "error_rate", "queries_per_request")
HIGHER_IS_BETTER = frozenset({"rps"})
DEFAULT_TOLERANCE: dict[str, float] = {
    "p50_ms": 0.20,
    "p95_ms": 0.20,
    "p99_ms": 0.30,  # the tail moves most between runs
    "rps": 0.20,
    "error_rate": 0.50,
    "queries_per_request": 0.10,
}
DEFAULT_MIN_CHANGE: dict[str, float] = {
    "p50_ms": 5.0,
    "p95_ms": 5.0,
    "p99_ms": 10.0,
    "rps": 2.0,
    "error_rate": 0.01,  # one percentage point
    "queries_per_request": 0.5,
}
# A percentile of a handful of requests is one request's latency: below these counts (on either
# side) a metric is shown but does not gate. p99 needs ~100 requests to be more than the maximum.
MIN_SAMPLES: dict[str, int] = {"p50_ms": 5, "p95_ms": 20, "p99_ms": 100, "error_rate": 20}
_DECIMALS = {"error_rate": 4}


class BaselineError(ValueError):
    """A baseline file that cannot be read, or a bad tolerance."""


def _round(metric: str, value: float) -> float:
    return round(value, _DECIMALS.get(metric, 2))


@dataclass
class Baseline:
    routes: dict[str, dict[str, float]]  # {"GET /orders/{order_id}": {"p95_ms": 12.5, ...}}
    top_fingerprints: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # when, what load, which versions
    # Every N+1 / slow-query (detector, route, fingerprint) of the runs; None: a file from before
    # findings were recorded (compare then cannot tell new ones, and says so).
    findings: list[dict[str, str]] | None = None

    def to_json(self) -> str:
        """Stable text: sorted keys, rounded numbers; only ``metadata`` holds timestamps."""
        routes = {
            route: {m: _round(m, v) for m, v in values.items()}
            for route, values in sorted(self.routes.items())
        }
        document: dict[str, Any] = {
            "format": FORMAT,
            "metadata": self.metadata,
            "routes": routes,
            "top_fingerprints": [
                {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}
                for row in self.top_fingerprints
            ],
        }
        if self.findings is not None:
            document["findings"] = sorted(
                self.findings, key=lambda f: (f["detector"], f["route"], f["fingerprint"])
            )
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())

    @classmethod
    def from_json(cls, text: str, source: str = "<baseline>") -> Baseline:
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BaselineError(f"{source}: not JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BaselineError(f"{source}: not an otelperf baseline (expected format {FORMAT!r})")
        routes = document.get("routes")
        if not isinstance(routes, dict):
            raise BaselineError(f"{source}: 'routes' must be an object")
        return cls(
            routes={r: {m: float(v) for m, v in values.items()} for r, values in routes.items()},
            top_fingerprints=list(document.get("top_fingerprints", [])),
            metadata=dict(document.get("metadata", {})),
            findings=_findings(document.get("findings"), source),
        )

    @classmethod
    def read(cls, path: Path) -> Baseline:
        try:
            text = path.read_text()
        except OSError as exc:
            raise BaselineError(f"cannot read the baseline {path}: {exc}") from exc
        return cls.from_json(text, str(path))


def _findings(raw: Any, source: str) -> list[dict[str, str]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise BaselineError(f"{source}: 'findings' must be a list of objects")
    return [{k: str(f.get(k, "")) for k in ("detector", "route", "fingerprint", "statement")} for f in raw]


def new_findings(
    baseline: Sequence[Mapping[str, str]], now: Sequence[Mapping[str, str]]
) -> list[Mapping[str, str]]:
    """The N+1 / slow-query findings of ``now`` that the baseline did not have (by detector, route
    and fingerprint): each one fails the comparison."""
    known = {(f["detector"], f["route"], f["fingerprint"]) for f in baseline}
    return [f for f in now if (f["detector"], f["route"], f["fingerprint"]) not in known]


def format_new_findings(found: Sequence[Mapping[str, str]]) -> str:
    if not found:
        return "baseline: no new N+1 or slow-query finding"
    lines = [
        f"NEW {f['detector']} on {f['route']}: {f['statement']} (fingerprint {f['fingerprint']})"
        for f in found
    ]
    lines.append(
        f"baseline: {len(found)} new N+1/slow-query finding(s) (mark known ones expected: docs/detectors.md)"
    )
    return "\n".join(lines)


def median_routes(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Per route and metric, the median over the runs that measured it."""
    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for route, metrics in run.items():
            for metric, value in metrics.items():
                values.setdefault(route, {}).setdefault(metric, []).append(value)
    return {
        route: {metric: float(statistics.median(vs)) for metric, vs in metrics.items()}
        for route, metrics in values.items()
    }


def parse_tolerances(
    specs: Sequence[str], defaults: Mapping[str, float], *, percent: bool
) -> dict[str, float]:
    """``["20%"]`` sets every metric, ``["p99_ms=50%", "rps=10%"]`` one each; later wins.

    ``percent``: values are relative ("20%" or 0.2); else absolute numbers in the metric's unit.
    """
    out = dict(defaults)
    for spec in specs:
        metric, _, raw = spec.rpartition("=")
        try:
            value = float(raw.strip().rstrip("%")) / 100 if raw.strip().endswith("%") else float(raw)
        except ValueError:
            raise BaselineError(f"tolerance {spec!r}: expected e.g. 20% or p95_ms=20%") from None
        if value < 0:
            raise BaselineError(f"tolerance {spec!r}: must not be negative")
        if not percent and raw.strip().endswith("%"):
            raise BaselineError(f"minimum change {spec!r}: give an absolute number (ms, req/s, ...)")
        if metric:
            if metric not in METRICS:
                raise BaselineError(
                    f"tolerance {spec!r}: unknown metric {metric!r}; one of {', '.join(METRICS)}"
                )
            out[metric] = value
        else:
            out = dict.fromkeys(METRICS, value)
    return out


@dataclass(frozen=True)
class Row:
    route: str
    metric: str
    baseline: float | None
    now: float | None
    verdict: str  # "ok" | "REGRESSED" | "improved" | "new" | "missing" | "few samples"

    @property
    def change(self) -> str:
        if self.baseline is None or self.now is None:
            return ""
        delta = self.now - self.baseline
        absolute = _show(self.metric, delta, signed=True)
        if self.baseline == 0:
            return absolute
        return f"{absolute} ({delta / abs(self.baseline) * 100:+.0f}%)"


def _show(metric: str, value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    sign = "+" if signed else ""
    if metric.endswith("_ms"):
        return f"{value:{sign}.1f} ms"
    if metric == "error_rate":
        return f"{value * 100:{sign}.2f} %"
    if metric == "rps":
        return f"{value:{sign}.1f}/s"
    return f"{value:{sign}.2f}"


def verdict(metric: str, baseline: float, now: float, tolerance: float, min_change: float) -> str:
    worse = (baseline - now) if metric in HIGHER_IS_BETTER else (now - baseline)
    limit = max(tolerance * abs(baseline), min_change)
    if worse > limit:
        return "REGRESSED"
    if -worse > limit:
        return "improved"
    return "ok"


def compare(
    baseline: Mapping[str, Mapping[str, float]],
    now: Mapping[str, Mapping[str, float]],
    tolerance: Mapping[str, float] = DEFAULT_TOLERANCE,
    min_change: Mapping[str, float] = DEFAULT_MIN_CHANGE,
) -> list[Row]:
    """One row per route and metric. Routes only one side has are "new"/"missing" (not failures:
    a renamed route or a changed scenario is for a person to judge, not a regression gate); a
    percentile of fewer requests than ``MIN_SAMPLES`` is "few samples" (shown, not gating)."""
    rows: list[Row] = []
    for route in sorted(set(baseline) | set(now)):
        before, after = baseline.get(route), now.get(route)
        if before is None or after is None:
            rows.append(Row(route, "requests", None, None, "new" if before is None else "missing"))
            continue
        for metric in METRICS:
            b, n = before.get(metric), after.get(metric)
            if b is None or n is None:
                continue
            samples = min(before.get("requests", math.inf), after.get("requests", math.inf))
            if samples < MIN_SAMPLES.get(metric, 1):
                rows.append(Row(route, metric, b, n, "few samples"))
                continue
            result = verdict(metric, b, n, tolerance.get(metric, 0.2), min_change.get(metric, 0.0))
            rows.append(Row(route, metric, b, n, result))
    return rows


def regressions(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.verdict == "REGRESSED"]


def format_rows(rows: Sequence[Row]) -> str:
    header = ("route", "metric", "baseline", "now", "change", "verdict")
    cells = [
        (r.route, r.metric, _show(r.metric, r.baseline), _show(r.metric, r.now), r.change, r.verdict)
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    bad = regressions(rows)
    routes = sorted({r.route for r in bad})
    if bad:
        lines.append(f"baseline: {len(bad)} regression(s) in {len(routes)} route(s): {', '.join(routes)}")
    else:
        lines.append("baseline: no regression beyond tolerance")
    return "\n".join(lines)
