"""otelperf's own export requests are not traced by its instrumentation.

With ``requests`` instrumented, an export request traced as a CLIENT span would be carried by the
next export, which would make another span: a request per batch interval forever, and a "POST
/v1/traces" trace per batch in the user's backend. A real pipeline exporting to a loopback sink.
"""

from __future__ import annotations

import time

import otelperf
from otelperf.testing import OTLPSink


def test_exporting_makes_no_spans_of_its_own() -> None:
    sink = OTLPSink().start()
    try:
        runtime = otelperf.init(
            service_name="no-feedback",
            endpoint=sink.endpoint,
            instrument="requests",
            schedule_delay="50ms",
            metric_export_interval="60s",
        )
        tracer = runtime.tracer
        assert tracer is not None
        with tracer.start_as_current_span("work"):
            pass
        deadline = time.monotonic() + 5
        while not sink.spans and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # twenty batch intervals: a feedback loop would have exported ~20 spans
        delivery = runtime.delivery
        assert delivery is not None
        assert otelperf.shutdown(timeout=10)
    finally:
        otelperf.shutdown(timeout=5)
        sink.stop()
    assert [s.name for s in sink.spans] == ["work"]
    assert delivery.spans_handed == 1 and delivery.export_requests == 1, delivery
