"""``otelperf baseline record|compare``: per-route performance baselines, and a CI gate on them.

    otelperf baseline record --out baselines/shop.json --runs 3      # load, measure, write
    otelperf baseline compare --baseline baselines/shop.json --runs 3 --tolerance 20%

Each run is ``otelperf loadtest``'s load run followed by :func:`otelperf.baseline.measure` of its
window; ``--window 10m`` reads the last ten minutes instead of running any load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

from otelperf._version import __version__
from otelperf.baseline import Measured, measure
from otelperf.baseline.collect import Backends, CollectError
from otelperf.baseline.model import (
    DEFAULT_MIN_CHANGE,
    DEFAULT_TOLERANCE,
    Baseline,
    BaselineError,
    compare,
    format_new_findings,
    format_rows,
    median_routes,
    new_findings,
    parse_tolerances,
    regressions,
)
from otelperf.cli.loadtest import add_load_arguments, load_options


def _service(args: argparse.Namespace) -> str:
    if args.service:
        return str(args.service)
    from otelperf.budgets import load_budgets

    service = load_budgets(args.budgets or None).service
    if not service:
        raise BaselineError(
            "which service? give --service NAME (its service.name) or `service` in the budgets"
        )
    return service


def _measure_runs(
    args: argparse.Namespace, service: str, defaults: dict[str, Any]
) -> tuple[list[Measured], Any]:
    backends = Backends(args.prometheus, args.jaeger)
    if args.window:
        from otelperf.loadtest.runner import parse_duration

        end = time.time()
        start = end - parse_duration(args.window)
        print(f"otelperf baseline: reading the last {args.window} of {service} (no load run)", flush=True)
        return [measure(backends, service, start, end)], None
    from otelperf.loadtest import run_load

    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    options = load_options(args)
    runs = []
    for i in range(args.runs):
        print(f"otelperf baseline: run {i + 1} of {args.runs} ({options.scenario}, {options.duration_s:g} s)")
        run = run_load(options)
        if run.exit_code not in (0, 1) or not run.summary:
            raise BaselineError(f"the load run failed (Locust exit {run.exit_code})")
        if run.exit_code == 1:
            print("otelperf baseline: (budget thresholds breached in this run; measuring it anyway)")
        expected = int(run.summary.get("total", {}).get("requests", 0))
        print(
            f"otelperf baseline: waiting for {expected} requests of {service} in Prometheus ...", flush=True
        )
        start = run.finished - options.duration_s - 1  # Locust starts its clock after its own start-up
        start = max(start, run.started)
        measured = measure(
            backends,
            service,
            start,
            run.finished,
            expected_requests=expected,
            settle_timeout=args.settle_timeout,
        )
        # rps over the run time Locust was asked for, not over start-up and shutdown
        for values in measured.routes.values():
            values["rps"] = values["requests"] / options.duration_s
        runs.append(measured)
    return runs, options


def format_measured(routes: dict[str, dict[str, float]]) -> str:
    header = ("route", "requests", "p50", "p95", "p99", "req/s", "errors", "queries/req")
    cells = []
    for route, v in sorted(routes.items()):

        def ms(key: str, values: dict[str, float] = v) -> str:
            return f"{values[key]:.1f} ms" if key in values else "-"

        qpr = f"{v['queries_per_request']:.1f}" if "queries_per_request" in v else "-"
        requests, rps, errors = v.get("requests", 0), v.get("rps", 0), v.get("error_rate", 0) * 100
        cells.append(
            (
                route,
                f"{requests:.0f}",
                ms("p50_ms"),
                ms("p95_ms"),
                ms("p99_ms"),
                f"{rps:.1f}",
                f"{errors:.2f} %",
                qpr,
            )
        )
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cmd_record(args: argparse.Namespace) -> int:
    try:
        service = _service(args)
        defaults = {"scenario": "mixed", "duration": "30s", "host": "http://127.0.0.1:8000"}
        runs, options = _measure_runs(args, service, defaults)
    except (BaselineError, CollectError) as exc:
        print(f"otelperf baseline record: {exc}")
        return 2
    routes = median_routes([r.routes for r in runs])
    if not routes:
        print(f"otelperf baseline record: no requests of service {service!r} in Prometheus; nothing written")
        return 1
    metadata: dict[str, Any] = {
        "recorded_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "service": service,
        "runs": len(runs),
        "otelperf_version": __version__,
        "traces_read": sum(r.traces for r in runs),
    }
    if options is not None:
        metadata["load"] = {
            "scenario": options.scenario,
            "users": options.users_or_default(),
            "duration_s": options.duration_s,
            "host": options.host,
        }
    else:
        metadata["window"] = args.window
    seen = {(f["detector"], f["route"], f["fingerprint"]): f for r in runs for f in r.findings}
    baseline = Baseline(routes, runs[-1].fingerprints, metadata, findings=list(seen.values()))
    out = Path(args.out)
    baseline.write(out)
    print(format_measured(routes))
    print(f"otelperf baseline record: {len(routes)} routes, median of {len(runs)} run(s), written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        baseline = Baseline.read(Path(args.baseline))
        tolerance = parse_tolerances(args.tolerance, DEFAULT_TOLERANCE, percent=True)
        min_change = parse_tolerances(args.min_change, DEFAULT_MIN_CHANGE, percent=False)
        if not args.service:
            args.service = baseline.metadata.get("service")
        service = _service(args)
        load = baseline.metadata.get("load", {})
        # Like for like: the same load as the baseline's, unless the command line says otherwise.
        defaults = {
            "scenario": load.get("scenario", "mixed"),
            "duration": f"{load.get('duration_s', 30):g}",
            "users": load.get("users"),
            "host": load.get("host", "http://127.0.0.1:8000"),
        }
        runs, _ = _measure_runs(args, service, defaults)
    except (BaselineError, CollectError) as exc:
        print(f"otelperf baseline compare: {exc}")
        return 2
    now = median_routes([r.routes for r in runs])
    rows = compare(baseline.routes, now, tolerance, min_change)
    recorded = baseline.metadata.get("recorded_at", "?")
    print(f"\nBaseline {args.baseline} ({recorded}) vs now, median of {len(runs)} run(s):")
    print(format_rows(rows))
    # A new N+1 or slow query fails the gate whatever the latency: it grows with the data.
    new: list[Any] = []
    if baseline.findings is None:
        print("baseline: recorded without findings; record it again to gate on new N+1/slow queries")
    else:
        seen = {(f["detector"], f["route"], f["fingerprint"]): f for r in runs for f in r.findings}
        new = new_findings(baseline.findings, list(seen.values()))
        print(format_new_findings(new))
    return 1 if regressions(rows) or new else 0


def add_parser(sub: Any) -> None:
    """Register ``otelperf baseline record|compare`` on the CLI's subparsers."""
    parser = sub.add_parser(
        "baseline",
        help="record per-route performance baselines and fail on regressions",
        description="Record per-route p50/p95/p99, throughput, error rate, queries per request and the "
        "costliest query fingerprints into a JSON file meant to be committed; compare a new run "
        "against it and exit 1 when a route regressed beyond tolerance.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--service", help="service.name of the service (default: from the budgets/baseline)")
    common.add_argument("--prometheus", default="http://127.0.0.1:9090")
    common.add_argument("--jaeger", default="http://127.0.0.1:16686")
    common.add_argument("--window", help="read the last WINDOW (e.g. 10m) instead of running the load")
    common.add_argument(
        "--settle-timeout", type=float, default=60.0, help="max seconds to wait for the run's metrics"
    )
    add_load_arguments(common, defaults=False)

    record = actions.add_parser("record", parents=[common], help="run the load and write a baseline")
    record.add_argument(
        "--out", default="baselines/shop.json", help="baseline file (default baselines/shop.json)"
    )
    record.add_argument("--runs", type=int, default=1, help="load runs; the baseline is their median")
    record.set_defaults(func=cmd_record)

    comp = actions.add_parser("compare", parents=[common], help="run the load again and compare")
    comp.add_argument("--baseline", default="baselines/shop.json", help="baseline file")
    comp.add_argument("--runs", type=int, default=3, help="load runs; their median is compared (default 3)")
    comp.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="[METRIC=]PCT",
        help="allowed relative worsening: 20%% for all metrics, or p99_ms=50%% (repeatable). "
        "Defaults: " + ", ".join(f"{k}={v * 100:.0f}%%" for k, v in DEFAULT_TOLERANCE.items()),
    )
    comp.add_argument(
        "--min-change",
        action="append",
        default=[],
        metavar="[METRIC=]VALUE",
        help="a worsening smaller than this is noise, whatever its percentage: p95_ms=5 (ms), rps=2, "
        "error_rate=0.01, queries_per_request=0.5 (repeatable)",
    )
    comp.set_defaults(func=cmd_compare)
