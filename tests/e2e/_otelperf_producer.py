"""Load for the fault tests through the real collector, made by otelperf itself: ``otelperf.init()``
(its exporting span processor, retry buffer and ``otel.sdk.*`` metrics) and spans of known trace ids
from ``trace.get_tracer(...)``, paced at a fixed rate.

Unlike ``_delivery_producer`` (the SDK with exports retried forever, to keep the app side out of
the question), here the app side is the subject: whatever otelperf could not deliver it must
count, and ``Runtime.delivery`` must balance.

    OTELPERF_RETRY_BUFFER=256KiB python -m tests.e2e._otelperf_producer \\
        --service faults-x --rate 1000 --duration 18 --out DIR

writes, in DIR:
    produced.txt    every trace id made, one per line (each trace has --spans-per-trace spans)
    summary.json    produced spans, the rate achieved, exceptions raised while producing, what
                    ``otelperf.shutdown()`` returned and ``Runtime.delivery`` after it
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace

import otelperf


def produce(
    service: str, *, rate: float, spans_per_trace: int, duration: float, out: Path, endpoint: str
) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    runtime = otelperf.init(
        service_name=service,
        endpoint=endpoint,
        instrument="none",
        # Frequent, so the delivery figures reach Prometheus during the run too; the final export
        # at shutdown carries the final figures.
        metric_export_interval="2s",
    )
    tracer = trace.get_tracer("otelperf.tests.faults")
    errors: list[str] = []
    trace_ids: list[str] = []
    spans = 0
    began = time.monotonic()
    next_note = began + 5.0
    while (now := time.monotonic()) - began < duration:
        due = int((now - began) * rate / spans_per_trace)
        while len(trace_ids) < due:
            seq = len(trace_ids)
            try:
                # Attributes shaped like a real request's, so the retry buffer's bytes per span are
                # realistic (~400 bytes encoded).
                with tracer.start_as_current_span(
                    "GET /orders/{order_id}",
                    kind=trace.SpanKind.SERVER,
                    attributes={
                        "http.request.method": "GET",
                        "http.route": "/orders/{order_id}",
                        "url.path": f"/orders/{seq}",
                        "http.response.status_code": 200,
                        "faults.seq": seq,
                    },
                ) as root:
                    trace_ids.append(f"{root.get_span_context().trace_id:032x}")
                    for child in range(spans_per_trace - 1):
                        with tracer.start_as_current_span(
                            "SELECT shop.orders",
                            kind=trace.SpanKind.CLIENT,
                            attributes={
                                "db.system.name": "postgresql",
                                "db.operation.name": "SELECT",
                                "db.query.text": "SELECT id, customer_id, total FROM orders WHERE id = $1",
                                "faults.child": child,
                            },
                        ):
                            pass
                spans += spans_per_trace
            except Exception:  # the test asserts there are none
                errors.append(traceback.format_exc())
                trace_ids.append("")
        if now >= next_note:
            stats = runtime.delivery
            print(f"producer: {spans} spans made; {stats.to_dict() if stats else None}", flush=True)
            next_note = now + 5.0
        time.sleep(0.005)
    producing_s = time.monotonic() - began
    (out / "produced.txt").write_text("".join(f"{tid}\n" for tid in trace_ids if tid))
    shutdown_ok = otelperf.shutdown(timeout=60)
    delivery = runtime.delivery
    summary: dict[str, object] = {
        "service": service,
        "produced_traces": len(trace_ids),
        "produced_spans": spans,
        "spans_per_trace": spans_per_trace,
        "producing_seconds": round(producing_s, 3),
        "rate": round(spans / producing_s, 1),
        "errors": errors,
        "shutdown_ok": shutdown_ok,
        "shutdown_seconds": round(time.monotonic() - began - producing_s, 2),
        "delivery": delivery.to_dict() if delivery else None,
    }
    (out / "summary.json").write_text(json.dumps(summary))
    print(f"producer: done {json.dumps(summary)}", flush=True)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--service", required=True)
    parser.add_argument("--rate", type=float, default=1000.0, help="spans per second")
    parser.add_argument("--spans-per-trace", type=int, default=8)
    parser.add_argument("--duration", type=float, default=18.0, help="seconds of producing")
    parser.add_argument("--endpoint", default="http://127.0.0.1:4318")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    produce(
        args.service,
        rate=args.rate,
        spans_per_trace=args.spans_per_trace,
        duration=args.duration,
        out=args.out,
        endpoint=args.endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
