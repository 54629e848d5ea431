"""The profiler's finding through the real collector and Jaeger, and the report's flame graph from it.

A FastAPI app under ``otelperf.init()`` (tests/e2e/_profiled_app.py, its own process) serves
requests that burn 150 ms of CPU in a known function, over a 30 ms budget; the finding event with
its folded stacks travels through the collector into Jaeger, and the HTML report's reader turns
what Jaeger stored into the route's flame graph.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.e2e._backend import JAEGER, StackUrls, jaeger_search, poll, wait_spans_stored

from otelperf import _names
from otelperf.backends import Jaeger
from otelperf.backends.jaeger import iter_events
from otelperf.report.html.flame import flame_svg, route_flames

ROOT = Path(__file__).resolve().parents[2]
SERVICE = f"profiled-e2e-{uuid.uuid4().hex[:6]}"
ROUTE = "GET /burn"
FUNCTION = "burn_cpu_for_the_e2e_test"
REQUESTS = 3


def test_the_app_profile_reaches_jaeger_and_the_report_draws_it(stack: StackUrls) -> None:
    started = time.time()
    env = {**os.environ, "OTELPERF_ENDPOINT": "http://127.0.0.1:4318"}
    subprocess.run(
        [sys.executable, "-m", "tests.e2e._profiled_app", "--service", SERVICE, "--requests", str(REQUESTS)],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    finished = time.time()
    wait_spans_stored()

    def events() -> list[dict[str, object]]:
        spans = jaeger_search(SERVICE, started, finished)
        return [
            dict(e.attributes)
            for _, e in iter_events(spans, _names.FINDING_EVENT)
            if e.attributes.get(_names.FINDING_DETECTOR) == "latency_budget"
        ]

    found = poll("the budget findings in Jaeger", events, lambda ev: len(ev) == REQUESTS, 30.0)
    for attributes in found:
        assert _names.FINDING_APP_PROFILE in attributes, attributes.get(_names.FINDING_HINT)
        summary = str(attributes[_names.FINDING_APP_PROFILE])
        assert summary.startswith("app ") and f"{FUNCTION} (_profiled_app.py:" in summary, summary
        assert f"{FUNCTION} (_profiled_app.py:" in str(attributes[_names.FINDING_APP_FOLDED])
        assert f"; {summary}" in str(attributes[_names.FINDING_HINT])

    [flame] = route_flames(Jaeger(JAEGER, timeout=5.0), [(SERVICE, ROUTE)], started, finished)
    assert flame.route == ROUTE and flame.requests == REQUESTS
    burned = sum(ms for stack, ms in flame.stacks.items() if FUNCTION in stack.rsplit(";", 1)[-1])
    assert burned >= REQUESTS * 150 * 0.6  # most of the 3 x 150 ms burnt is on the function's boxes
    assert f">{FUNCTION} (_profiled_app.py:" in flame_svg(flame.stacks, title=ROUTE)
