"""``python -m examples.shop.tour``: run the tour (see the package's docstring for its steps)."""

from __future__ import annotations

import argparse
import os
import sys

from examples.shop import tour
from examples.shop.tour.alerts import show_alerts
from examples.shop.tour.app import port_free, run_app_under_load
from examples.shop.tour.backend import span_counters, start_backend, wait_spans_stored
from examples.shop.tour.common import APP_LOG, StepFailed, say
from examples.shop.tour.findings import what_detectors_found
from examples.shop.tour.metrics import latency_panels
from examples.shop.tour.report import write_html_report
from examples.shop.tour.traces import where_to_look


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.shop.tour",
        description=tour.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, help="Locust users (default: the mixed scenario's, 20)")
    parser.add_argument(
        "--alert-wait", type=float, default=60.0, help="seconds to wait for an alert to fire (default 60)"
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("SHOP_PORT", "8000")))
    parser.add_argument("--concurrency", type=int, default=8, help="examples/load.py workers (no Locust)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite and the in-process cache (no services)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        if not port_free(args.port):
            raise StepFailed("app start", f"port {args.port} is in use: pass --port or set SHOP_PORT")
        stack, was_running = start_backend()
        try:
            before = span_counters()
        except OSError as exc:
            raise StepFailed(
                "backend", f"cannot read the span counters: {exc}", stack.state_dir / "logs"
            ) from exc
        started, ended, load_status = run_app_under_load(args)
        spans = wait_spans_stored(before, stack)
        try:
            instance, traces = where_to_look(started, ended)
        except (OSError, KeyError, ValueError) as exc:  # BackendError is an OSError
            raise StepFailed(
                "Jaeger query", f"{type(exc).__name__}: {exc}", stack.log_path("jaeger")
            ) from exc
        latency_panels(instance, ended)
        try:
            findings = what_detectors_found(instance, started, ended)
        except (OSError, KeyError, ValueError) as exc:  # BackendError, PrometheusQueryError
            raise StepFailed(
                "detector findings", f"{type(exc).__name__}: {exc}", stack.state_dir / "logs"
            ) from exc
        firing, delivered = show_alerts(args.alert_wait, started)
        report_ok = write_html_report(started)
    except StepFailed as exc:
        say(str(exc))
        say("The backend (if it started) keeps running: `make demo-down` stops it.")
        return 1
    except KeyboardInterrupt:
        say("interrupted; the backend (if it started) keeps running: `make demo-down` stops it.")
        return 130
    say()
    telemetry = stack.status().telemetry
    if telemetry is not None:
        print(f"Collector: {telemetry.describe()}.")
    n_plus_one = sorted({f.route for f in findings if f.detector == "n_plus_one"})
    print(
        f"Tour: {spans:.0f} spans, {traces} traces read back, {len(findings)} kinds of findings "
        f"(N+1 on {', '.join(n_plus_one) or 'no route'}), {firing} alerts firing ({delivered} in "
        f"Alertmanager), HTML report {'written' if report_ok else 'FAILED'}."
    )
    before_note = "It was already running before the demo. " if was_running else ""
    print(f"{before_note}The backend keeps running: `make demo-down` stops it.")
    if load_status:
        say(f"exit status 1: requests of the load failed (the tables above; log: {APP_LOG})")
    return 0 if load_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
