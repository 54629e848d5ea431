"""Every span the collector accepted reaches Jaeger, whatever restarts in between.

Real collector, real Jaeger (on Badger), read back through Jaeger's /api/v3 by trace id. A producer
(``_delivery_producer``: the OpenTelemetry SDK, exports retried until accepted) sends ~800 spans/s
of known trace ids over OTLP/HTTP while the test:

(a) kills Jaeger (SIGKILL) for 10 s and starts it again: the collector's sending queue holds the
    spans meanwhile and delivers them, so every produced trace is in Jaeger, complete;
(b) stops Jaeger, then stops the collector (SIGTERM, and in a second run SIGKILL, as a crash)
    while its queue holds spans, starts it again ~8 s later, then starts Jaeger: what the
    collector had accepted but not sent survives in its file queue (collector-config/otelcol.yaml,
    file_storage) and reaches Jaeger; the producer retries while the collector is away, so again
    every produced trace is in Jaeger.

The collector's own metrics (:8888: queue size, enqueue/send failures) are sampled throughout and
shown when a span is missing. These tests restart stack components: they run last in the session
(tests/conftest.py), and switch Jaeger to Badger storage while they run (an in-memory Jaeger forgets
every trace when it restarts: that is storage, not delivery), then back to the storage it had.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.e2e._backend import COLLECTOR_METRICS, JAEGER
from tests.e2e._badger import Say, jaeger_on_badger, progress_writer
from tests.e2e.conftest import StackUrls

from otelperf.backends import Jaeger
from otelperf.backends.exposition import scrape
from otelperf.stack import SpanFlow, Stack
from otelperf.stack.components import COLLECTOR
from otelperf.stack.metrics import span_flow
from otelperf.stack.state import tail_lines

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RATE = 800.0  # spans per second
SPANS_PER_TRACE = 8
QUEUE_FILE = "exporter_otlp_grpc_jaeger_traces"  # file_storage's file for that exporter's queue


@pytest.fixture(scope="module")
def say(pytestconfig: pytest.Config) -> Say:
    return progress_writer(pytestconfig, "delivery")


@pytest.fixture(scope="module")
def backend(stack: StackUrls, say: Say) -> Iterator[Stack]:
    del stack
    with jaeger_on_badger(say) as badger:
        yield badger


# --- the collector's own view -----------------------------------------------------------------------


@dataclass
class CollectorWatch:
    """Samples the collector's :8888 metrics and its queue file twice a second, in a thread."""

    queue_file: Path
    samples: list[tuple[float, SpanFlow | None]] = field(default_factory=list)
    peak_queue: int = 0  # bytes of serialized spans (sizer: bytes)
    peak_file: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> CollectorWatch:
        self._thread = threading.Thread(target=self._run, name="collector-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.5)

    def sample(self) -> SpanFlow | None:
        flow: SpanFlow | None
        try:
            flow = span_flow(scrape(COLLECTOR_METRICS))
        except OSError:
            flow = None  # the collector is down
        self.samples.append((time.time(), flow))
        if flow is not None and flow.queue_size is not None:
            self.peak_queue = max(self.peak_queue, flow.queue_size)
        with contextlib.suppress(OSError):  # not created yet
            self.peak_file = max(self.peak_file, self.queue_file.stat().st_size)
        return flow

    def last(self) -> SpanFlow | None:
        return next((flow for _, flow in reversed(self.samples) if flow is not None), None)

    def wait_drained(self, timeout: float) -> bool:
        """The queue is empty (everything the collector holds went to Jaeger)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            flow = self.sample()
            if flow is not None and flow.queue_size == 0:
                return True
            time.sleep(0.5)
        return False

    def report(self) -> str:
        last = self.last()
        lines = [
            f"collector queue peak: {self.peak_queue} bytes; queue file peak: {self.peak_file} bytes",
            f"collector now: {last.describe() if last else 'unreachable'}",
            "samples (unix time, queue bytes, sent, send failed, enqueue failed):",
        ]
        for at, flow in self.samples[::4][-40:]:
            if flow is None:
                lines.append(f"  {at:.1f}  collector down")
            else:
                lines.append(
                    f"  {at:.1f}  {flow.queue_size}  {flow.sent}  {flow.send_failed}  {flow.enqueue_failed}"
                )
        return "\n".join(lines)


# --- the producer -------------------------------------------------------------------------------------


@dataclass
class Producer:
    service: str
    out: Path
    proc: subprocess.Popen[bytes]
    started: float  # unix seconds

    @classmethod
    def start(cls, tmp_path: Path, scenario: str, duration: float) -> Producer:
        service = f"delivery-{scenario}-{uuid.uuid4().hex[:8]}"
        out = tmp_path / scenario
        out.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL")}  # only what we pass
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        argv = [
            sys.executable,
            "-m",
            "tests.e2e._delivery_producer",
            f"--service={service}",
            f"--rate={RATE}",
            f"--spans-per-trace={SPANS_PER_TRACE}",
            f"--duration={duration}",
            f"--out={out}",
        ]
        log = (out / "producer.log").open("wb")
        started = time.time()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return cls(service, out, proc, started)

    def accepted(self) -> dict[str, int]:
        """Trace id -> spans of it the collector accepted so far."""
        counts: dict[str, int] = {}
        path = self.out / "accepted.txt"
        if path.exists():
            for line in path.read_text().splitlines():
                trace_id, spans = line.split()
                counts[trace_id] = counts.get(trace_id, 0) + int(spans)
        return counts

    def finish(self, timeout: float) -> dict[str, float]:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"the producer did not finish within {timeout:g} s:\n{self.log()}")
        assert code == 0, f"producer exited with {code}:\n{self.log()}"
        summary: dict[str, float] = json.loads((self.out / "summary.json").read_text())
        return summary

    def log(self) -> str:
        return "\n".join(tail_lines(self.out / "producer.log", 30))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


# --- Jaeger -------------------------------------------------------------------------------------------


def jaeger_span_ids(service: str, start: float, end: float, limit: int) -> tuple[dict[str, set[str]], int]:
    """Span ids per trace id of ``service`` in [start, end], and how many spans Jaeger returned
    (more than the distinct ids: a span stored twice)."""
    spans = Jaeger(JAEGER, timeout=30.0).search_spans(service, start=start - 1, end=end + 1, limit=limit)
    found: dict[str, set[str]] = {}
    for span in spans:
        found.setdefault(span.trace_id, set()).add(span.span_id)
    return found, len(spans)


@dataclass
class Arrival:
    expected_traces: int
    expected_spans: int
    arrived_spans: int
    returned_spans: int
    missing: dict[str, str]  # trace id -> "k of n spans"
    seconds: float


def wait_in_jaeger(producer: Producer, end: float, accepted: dict[str, int], timeout: float) -> Arrival:
    """Poll Jaeger until every accepted span of every accepted trace is there (or ``timeout``)."""
    began = time.monotonic()
    limit = len(accepted) + 500
    missing: dict[str, str] = {}
    arrived = returned = 0
    while True:
        try:
            found, returned = jaeger_span_ids(producer.service, producer.started, end, limit)
        except OSError:  # the backends' BackendError
            found, returned = {}, 0
        missing = {
            tid: f"{len(found.get(tid, ()))} of {n} spans"
            for tid, n in accepted.items()
            if len(found.get(tid, ())) < n
        }
        arrived = sum(min(len(found.get(tid, ())), n) for tid, n in accepted.items())
        if not missing or time.monotonic() - began >= timeout:
            break
        time.sleep(2.0)
    return Arrival(
        expected_traces=len(accepted),
        expected_spans=sum(accepted.values()),
        arrived_spans=arrived,
        returned_spans=returned,
        missing=missing,
        seconds=time.monotonic() - began,
    )


def collector_log() -> str:
    stack = Stack(with_alertmanager=False)
    lines = [
        ln for ln in tail_lines(stack.log_path("collector"), 400) if "\terror\t" in ln or "\twarn\t" in ln
    ]
    return "\n".join(line[:300] for line in lines[-15:])


def check_delivery(
    scenario: str,
    producer: Producer,
    summary: dict[str, float],
    watch: CollectorWatch,
    say: Say,
    *,
    extra: str = "",
) -> Arrival:
    end = time.time()
    accepted = producer.accepted()

    def context() -> str:  # built only when an assertion fails
        return (
            f"\nproducer: {summary}\n{watch.report()}\n{extra}\ncollector log (warnings, errors):\n"
            f"{collector_log()}\nproducer log:\n{producer.log()}"
        )

    # The app side is out of the question: it made every span and got every one accepted.
    assert summary["given_up_spans"] == 0 and summary["accepted_spans"] == summary["produced_spans"], (
        context()
    )
    assert len(accepted) == summary["produced_traces"], context()
    assert all(n >= SPANS_PER_TRACE for n in accepted.values()), context()
    accepted = {tid: SPANS_PER_TRACE for tid in accepted}  # an export retried after a lost 2xx counts once
    say(f"({scenario}) waiting for the collector's queue to drain")
    drained = watch.wait_drained(timeout=45)
    arrival = wait_in_jaeger(producer, end, accepted, timeout=45 if drained else 10)
    say(
        f"({scenario}) in Jaeger: {arrival.arrived_spans} of {arrival.expected_spans} spans, "
        f"{arrival.expected_traces - len(arrival.missing)} of {arrival.expected_traces} traces complete "
        f"(Jaeger returned {arrival.returned_spans} spans; queue peak {watch.peak_queue} bytes, "
        f"queue file peak {watch.peak_file} bytes)"
    )
    sample = dict(list(arrival.missing.items())[:10])
    assert not arrival.missing, (
        f"({scenario}) {len(arrival.missing)} of {arrival.expected_traces} traces incomplete in Jaeger "
        f"after {arrival.seconds:.0f} s (queue drained: {drained}); e.g. {sample}" + context()
    )
    return arrival


# --- the scenarios ------------------------------------------------------------------------------------


def test_jaeger_killed_under_load_loses_no_span(backend: Stack, tmp_path: Path, say: Say) -> None:
    began = time.monotonic()
    queue_file = COLLECTOR.data_dir(backend.state_dir) / QUEUE_FILE
    with CollectorWatch(queue_file) as watch:
        producer = Producer.start(tmp_path, "a", duration=20)
        try:
            say(f"(a) producing {RATE:.0f} spans/s for 20 s as {producer.service}")
            time.sleep(5)
            say("(a) " + backend.stop("jaeger", kill=True))
            time.sleep(10)
            queued = watch.last()
            say(f"(a) Jaeger down 10 s: collector {queued.describe() if queued else 'unreachable'}")
            backend.start("jaeger", timeout=60)
            say(f"(a) Jaeger back; {len(producer.accepted())} traces accepted so far")
            summary = producer.finish(timeout=90)
        finally:
            producer.stop()
        say(f"(a) producer done: {summary}")
        held = queued.queue_size if queued and queued.queue_size is not None else 0
        arrival = check_delivery("a", producer, summary, watch, say)
    # Not vacuous: the spans made while Jaeger was dead were held in the queue and sent afterwards.
    assert held > 0, f"the collector's queue held nothing after 10 s without Jaeger\n{watch.report()}"
    say(
        f"(a) PASSED: {summary['produced_spans']:.0f} spans produced, {arrival.arrived_spans} in Jaeger, "
        f"queue {held} bytes after 10 s without Jaeger (peak {watch.peak_queue}), "
        f"{time.monotonic() - began:.0f} s"
    )


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_collector_restarted_while_its_queue_holds_spans_loses_none(
    backend: Stack, tmp_path: Path, say: Say, how: str
) -> None:
    """SIGTERM: a clean stop. SIGKILL: a crash; the queue is written before the collector answers
    the app, so a crash loses nothing it acknowledged either."""
    began = time.monotonic()
    tag = f"b {how}"
    queue_file = COLLECTOR.data_dir(backend.state_dir) / QUEUE_FILE
    with CollectorWatch(queue_file) as watch:
        producer = Producer.start(tmp_path, f"b-{how.lower()}", duration=22)
        try:
            say(f"({tag}) producing {RATE:.0f} spans/s for 22 s as {producer.service}")
            time.sleep(3)
            say(f"({tag}) " + backend.stop("jaeger"))
            time.sleep(5)
            before = watch.sample()
            say(f"({tag}) before the collector stops: {before.describe() if before else 'unreachable'}")
            say(f"({tag}) " + backend.stop("collector", kill=how == "SIGKILL"))
            time.sleep(8)
            backend.start("collector", timeout=60)
            time.sleep(1)
            after = watch.sample()
            say(f"({tag}) collector back (Jaeger still down): {after.describe() if after else 'unreachable'}")
            time.sleep(2)
            backend.start("jaeger", timeout=60)
            say(f"({tag}) Jaeger back; {len(producer.accepted())} traces accepted so far")
            summary = producer.finish(timeout=90)
        finally:
            producer.stop()
        say(f"({tag}) producer done: {summary}")
        restored = after.queue_size if after and after.queue_size is not None else 0
        held = before.queue_size if before and before.queue_size is not None else 0
        extra = f"queue before the collector stopped: {held} bytes; after it started again: {restored} bytes"
        arrival = check_delivery(tag, producer, summary, watch, say, extra=extra)
    # Not vacuous: the collector stopped with spans in its queue. Jaeger was down from before that
    # until after the new collector started, and the producer never sends an accepted span again,
    # so those spans can only have reached Jaeger from the queue on disk.
    assert held > 0, extra + "\n" + watch.report()
    say(
        f"({tag}) PASSED: {summary['produced_spans']:.0f} spans produced, {arrival.arrived_spans} in Jaeger; "
        f"queue {held} bytes at the stop, {restored} bytes in the restarted collector's queue; "
        f"{time.monotonic() - began:.0f} s"
    )
