"""The fault matrix through the real collector, with otelperf itself as the producer.

A subprocess app (``_otelperf_producer``: ``otelperf.init()`` against the real collector's
OTLP/HTTP port, spans from ``trace.get_tracer(...)``) makes 1,000 spans/s of known trace ids for
18 s while the test breaks the backend, then everything is read back as a user would:

(a) the collector is stopped for 8 s and started again: otelperf's retry buffer holds the spans;
(b) Jaeger is killed (SIGKILL) for 10 s: the collector's persistent queue holds them;
    in both, every produced span is in Jaeger by trace id, the app raised nothing and kept its
    rate, ``Runtime.delivery`` balances with nothing dropped and ``shutdown()`` returned True;
(c) the collector is down for 15 s behind a small retry buffer (``OTELPERF_RETRY_BUFFER=256KiB``):
    spans are lost, and every lost one is counted: spans in Jaeger + counted dropped == produced,
    exactly, and the drop count is in Prometheus (``otel_sdk_*_total{error_type=...}`` of the
    service), where the user sees it.

Like test_e2e_delivery.py this restarts stack components, so it runs after every test that reads
the backend (tests/conftest.py), with Jaeger on Badger storage while it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.e2e._backend import COLLECTOR_METRICS, poll, prometheus_result
from tests.e2e._badger import Say, jaeger_on_badger, progress_writer
from tests.e2e.conftest import StackUrls
from tests.e2e.test_e2e_delivery import collector_log, jaeger_span_ids

from otelperf.backends.exposition import scrape
from otelperf.stack import Stack
from otelperf.stack.metrics import span_flow
from otelperf.stack.state import tail_lines

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RATE = 1000.0  # spans per second
SPANS_PER_TRACE = 8
DURATION_S = 18.0
FAULT_AT_S = 3.0  # into the run


@pytest.fixture(scope="module")
def say(pytestconfig: pytest.Config) -> Say:
    return progress_writer(pytestconfig, "faults")


@pytest.fixture(scope="module")
def backend(stack: StackUrls, say: Say) -> Iterator[Stack]:
    del stack
    with jaeger_on_badger(say) as badger:
        yield badger


@dataclass
class App:
    """The producer subprocess: otelperf in an app of its own."""

    service: str
    out: Path
    proc: subprocess.Popen[bytes]
    started: float  # unix seconds

    @classmethod
    def start(cls, tmp_path: Path, scenario: str, *, retry_buffer: str | None = None) -> App:
        service = f"faults-{scenario}-{uuid.uuid4().hex[:8]}"
        out = tmp_path / scenario
        out.mkdir()
        # Only what the test passes: no OTEL_*/OTELPERF_* of the developer's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "OTELPERF"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        if retry_buffer:
            env["OTELPERF_RETRY_BUFFER"] = retry_buffer
        argv = [
            sys.executable,
            "-m",
            "tests.e2e._otelperf_producer",
            f"--service={service}",
            f"--rate={RATE}",
            f"--spans-per-trace={SPANS_PER_TRACE}",
            f"--duration={DURATION_S}",
            f"--out={out}",
        ]
        log = (out / "app.log").open("wb")
        started = time.time()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return cls(service, out, proc, started)

    def finish(self, timeout: float = 120) -> dict[str, Any]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"the app did not finish within {timeout:g} s:\n{self.log()}")
        assert code == 0, f"the app exited with {code}:\n{self.log()}"
        summary: dict[str, Any] = json.loads((self.out / "summary.json").read_text())
        return summary

    def produced(self) -> list[str]:
        return (self.out / "produced.txt").read_text().split()

    def log(self, lines: int = 40) -> str:
        return "\n".join(tail_lines(self.out / "app.log", lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def collector_queue_bytes() -> int | None:
    """The collector's sending queue to Jaeger now (bytes), None when it does not answer."""
    try:
        text = scrape(COLLECTOR_METRICS)
    except OSError:  # the backends' BackendError
        return None
    return span_flow(text).queue_size


def run_scenario(
    tmp_path: Path, say: Say, tag: str, fault: str, *, retry_buffer: str | None = None
) -> tuple[App, dict[str, Any], int | None]:
    """Run the app for DURATION_S with ``fault`` applied FAULT_AT_S into it: the app's summary, and
    the collector's queue at the end of the fault."""
    backend_stack = Stack(with_alertmanager=False, jaeger_storage="badger", progress=say)
    app = App.start(tmp_path, tag, retry_buffer=retry_buffer)
    try:
        say(f"({tag}) {RATE:.0f} spans/s for {DURATION_S:g} s as {app.service}")
        time.sleep(FAULT_AT_S)
        component, down_s = {"collector-8s": ("collector", 8), "jaeger-10s": ("jaeger", 10)}.get(
            fault, ("collector", 15)
        )
        say(f"({tag}) " + backend_stack.stop(component, kill=component == "jaeger"))
        time.sleep(down_s)
        queued = collector_queue_bytes()
        backend_stack.start(component, timeout=60)
        say(f"({tag}) {component} back after {down_s} s (collector queue then: {queued} bytes)")
        summary = app.finish()
    finally:
        app.stop()
    assert "Traceback" not in app.log(400), app.log()
    say(f"({tag}) app done: {json.dumps({k: v for k, v in summary.items() if k != 'errors'})}")
    return app, summary, queued


def spans_in_jaeger(app: App, expected: int, timeout: float = 60) -> dict[str, set[str]]:
    """Span ids per produced trace id in Jaeger, polled until ``expected`` spans are there or
    ``timeout`` (the caller asserts on what it got, with the numbers)."""
    produced = set(app.produced())
    limit = len(produced) + 500
    deadline = time.monotonic() + timeout
    while True:
        try:
            found, _ = jaeger_span_ids(app.service, app.started, time.time(), limit)
        except OSError:  # URLError included: Jaeger is still starting
            found = {}
        found = {t: ids for t, ids in found.items() if t in produced}
        if sum(len(ids) for ids in found.values()) >= expected or time.monotonic() >= deadline:
            return found
        time.sleep(2.0)


def check_app_side(summary: dict[str, Any], *, lossless: bool) -> tuple[dict[str, Any], float]:
    delivery = summary["delivery"]
    assert isinstance(delivery, dict), summary
    assert summary["errors"] == [], summary["errors"]
    rate = float(summary["rate"])
    assert abs(rate - RATE) <= 0.1 * RATE, summary
    assert delivery["spans_handed"] == summary["produced_spans"], delivery
    assert delivery["spans_handed"] == delivery["spans_exported"] + delivery["spans_dropped"], delivery
    assert delivery["spans_queued"] == delivery["spans_buffered"] == delivery["spans_inflight"] == 0, delivery
    if lossless:
        assert delivery["spans_dropped"] == 0 and delivery["dropped"] == {}, delivery
        assert summary["shutdown_ok"] is True, summary
    return delivery, rate


@pytest.mark.parametrize("fault", ["collector-8s", "jaeger-10s"])
def test_every_span_reaches_jaeger_through_a_backend_fault(
    backend: Stack, tmp_path: Path, say: Say, fault: str
) -> None:
    del backend
    began = time.monotonic()
    tag = "a" if fault == "collector-8s" else "b"
    app, summary, queued = run_scenario(tmp_path, say, tag, fault)
    delivery, rate = check_app_side(summary, lossless=True)
    produced = app.produced()
    expected = len(produced) * SPANS_PER_TRACE
    assert expected == summary["produced_spans"]
    found = spans_in_jaeger(app, expected)
    incomplete = {t: len(found.get(t, ())) for t in produced if len(found.get(t, ())) != SPANS_PER_TRACE}
    in_jaeger = sum(len(ids) for ids in found.values())
    say(
        f"({tag}) PASSED: produced {expected}, in Jaeger {in_jaeger}, dropped {delivery['spans_dropped']}, "
        f"rate {rate:.0f}/s, export failures {delivery['export_failures']}; {time.monotonic() - began:.0f} s"
    )
    assert not incomplete, (
        f"{len(incomplete)} traces incomplete in Jaeger, e.g. {list(incomplete.items())[:5]}"
    )
    assert in_jaeger == expected
    # Not vacuous: otelperf saw the collector gone and retried; the collector held the spans
    # Jaeger could not take.
    if fault == "collector-8s":
        assert int(delivery["export_failures"]) > 0, delivery
    else:
        assert queued, f"the collector's queue held nothing after 10 s without Jaeger: {queued}"


def prometheus_drops(service: str) -> dict[str, float]:
    """error_type -> spans dropped, from the service's otel.sdk.* counters in Prometheus."""
    drops: dict[str, float] = {}
    for name in ("otel_sdk_exporter_span_exported_total", "otel_sdk_processor_span_processed_total"):
        query = f'sum by (error_type) ({name}{{service_name="{service}", error_type!=""}})'
        for series in prometheus_result(query):
            error = series.labels["error_type"]
            drops[error] = drops.get(error, 0.0) + series.value
    return drops


def test_an_outage_beyond_a_small_retry_buffer_loses_spans_and_counts_every_one(
    backend: Stack, tmp_path: Path, say: Say
) -> None:
    del backend
    began = time.monotonic()
    app, summary, _ = run_scenario(tmp_path, say, "c", "collector-15s", retry_buffer="256KiB")
    delivery, rate = check_app_side(summary, lossless=False)
    dropped = int(delivery["spans_dropped"])
    produced = int(summary["produced_spans"])
    assert dropped > 0 and set(delivery["dropped"]) == {"buffer_full"}, delivery
    assert summary["shutdown_ok"] is False, summary  # shutdown() says spans were lost
    found = spans_in_jaeger(app, produced - dropped)
    in_jaeger = sum(len(ids) for ids in found.values())
    say(f"(c) in Jaeger {in_jaeger}, counted dropped {dropped}, produced {produced}")
    assert in_jaeger + dropped == produced, (in_jaeger, dropped, produced, collector_log())
    assert in_jaeger == delivery["spans_exported"]

    # What the user sees: the loss, in their backend, under the service's name.
    seen = poll(
        f"{app.service}'s dropped spans in Prometheus",
        lambda: prometheus_drops(app.service),
        lambda drops: sum(drops.values()) >= dropped,
        timeout=30,
    )
    say(
        f"(c) PASSED: produced {produced}, in Jaeger {in_jaeger}, dropped {dropped} "
        f"(Prometheus: {seen}), rate {rate:.0f}/s; {time.monotonic() - began:.0f} s"
    )
    assert seen == {"buffer_full": float(dropped)}, seen
