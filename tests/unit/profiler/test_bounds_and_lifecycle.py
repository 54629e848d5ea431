"""The profiler's caps, its thread's lifecycle (lazy start, stop, fork) and the guard."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from types import FrameType

import anyio.to_thread
import pytest
from opentelemetry.trace import SpanKind
from tests.unit.backends.fake_backend import closed_port_url
from tests.unit.profiler.test_attribution import get_all, make_app

from otelperf import profiler
from otelperf._runtime import guard as _internal
from otelperf.profiler._sampler import FRAMES, Profiler, RequestSamples
from otelperf.testing import capture, stop_capture


def profiler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "otelperf-profiler" and t.is_alive()]


def deep(n: int) -> FrameType:
    return deep(n - 1) if n > 0 else sys._getframe()


def test_requests_followed_at_once_are_capped_and_counted() -> None:
    p = Profiler(max_requests=2)

    async def main() -> list[RequestSamples | None]:
        return [p.begin(i) for i in range(3)]

    try:
        records = asyncio.run(main())
        assert [r is not None for r in records] == [True, True, False]
        assert p.dropped_requests == 1 and p.following() == 2
    finally:
        p.stop()


def test_samples_stacks_and_frames_per_request_are_capped_and_counted() -> None:
    p = Profiler(max_samples=5, max_stacks=2, max_frames=8)
    record = RequestSamples(1, 0)
    frames = [deep(n) for n in (0, 1, 2, 3, 30, 30, 30)]  # 5 distinct stacks, then repeats
    for i, frame in enumerate(frames):
        p._add(record, frame, now=(i + 1) * 10_000_000, last=i * 10_000_000)
    assert len(record.times) == 5 and record.dropped_samples == 2
    # Two stacks, then the shared "stacks beyond the cap" one: (0,), the placeholder frame.
    assert len(record.stacks) == 3 and (0,) in record.stacks and record.dropped_stacks == 3
    assert FRAMES[0] == (None, 0)
    longest = max(len(s) for s in record.stacks)
    assert longest <= 8 + 1  # max_frames, plus the "more frames" marker of a truncated stack
    assert record.weights == [10_000_000] * 5


def test_finished_requests_waiting_for_the_detector_are_capped_and_counted() -> None:
    p = Profiler(max_finished=3)
    for span_id in range(5):
        record = RequestSamples(span_id, 0)
        p._add(record, sys._getframe(), now=10, last=0)
        p.end(record)
    assert p.evicted_requests == 2
    assert p.take(0) is None and p.take(1) is None  # the oldest made room
    taken = p.take(4)
    assert taken is not None and taken.span_id == 4
    assert p.take(4) is None  # handed out once


def test_a_request_without_samples_leaves_nothing_behind() -> None:
    p = Profiler()
    record = RequestSamples(7, 0)
    p.end(record)
    assert p.take(7) is None and p._finished == {}


def test_the_thread_starts_with_the_first_request_and_stops_with_otelperf() -> None:
    original = anyio.to_thread.run_sync
    assert profiler_threads() == []
    for _ in range(20):  # a test suite calling init() often: no thread, nothing to join
        c = capture(profiler=True)
        assert c.runtime.profiler is not None and not c.runtime.profiler.running
        stop_capture(c)
    assert profiler_threads() == [] and profiler.current() is None

    c = capture(budgets={"*": 30}, profiler=True)
    try:
        p = c.runtime.profiler
        assert profiler.current() is p
        assert anyio.to_thread.run_sync is not original  # wrapped while the profiler is on
        asyncio.run(get_all(make_app(), "/async"))
        assert p.running and len(profiler_threads()) == 1
    finally:
        stop_capture(c)
    assert not p.running and profiler_threads() == []
    assert profiler.current() is None
    assert anyio.to_thread.run_sync is original


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_sampling_again_with_its_first_request() -> None:
    c = capture(budgets={"*": 30}, profiler=True, profiler_hz=200)
    try:
        asyncio.run(get_all(make_app(), "/async"))
        p = c.runtime.profiler
        assert p is not None and p.running
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            code = 1
            try:
                os.close(read_end)
                report: dict[str, object] = {
                    "same": profiler.current() is p,
                    "thread_gone": p._thread is None,
                    "following": p.following(),
                }
                c.runtime.findings.clear()  # type: ignore[union-attr]
                asyncio.run(get_all(make_app(), "/async"))
                found = [f for f in c.findings if f.detector == "latency_budget"]
                report["running"] = p.running
                report["top"] = found[0].details["app_profile"]["functions"][0]["function"] if found else None
                os.write(write_end, json.dumps(report).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as reader:
            report = json.loads(reader.read() or "{}")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert report == {
            "same": True,
            "thread_gone": True,
            "following": 0,
            "running": True,
            "top": "burn_in_async_handler",
        }
        assert p.running  # the parent's thread is untouched
    finally:
        stop_capture(c)


def test_an_error_while_sampling_is_recorded_and_the_thread_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    failures = []

    def broken(self: Profiler, frame: object, entry: object) -> tuple[int, ...]:
        failures.append(1)
        raise RuntimeError("profiler bug")

    c = capture(budgets={"*": 30}, profiler=True, profiler_hz=200)
    try:
        monkeypatch.setattr(Profiler, "_stack", broken)
        [response] = asyncio.run(get_all(make_app(), "/async"))
        assert response.status_code == 200
        assert failures and c.runtime.profiler is not None and c.runtime.profiler.running
        errors = _internal.take_internal_errors()
        assert errors and {where for where, _ in errors} == {"profiler.sample"}
        [finding] = [f for f in c.findings if f.detector == "latency_budget"]
        assert "app_profile" not in finding.details  # no samples: the finding as before
    finally:
        stop_capture(c)


@pytest.mark.parametrize("method", ["begin", "end"])
def test_an_error_registering_a_request_never_reaches_the_app(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("profiler bug")

    c = capture(budgets={"*": 30}, profiler=True)
    try:
        monkeypatch.setattr(Profiler, method, broken)
        monkeypatch.delenv("PYTEST_CURRENT_TEST")  # production mode: the guard logs, never raises
        responses = asyncio.run(get_all(make_app(), "/sync", "/async"))
        assert [r.status_code for r in responses] == [200, 200]
        errors = _internal.take_internal_errors()
        assert errors and {where for where, _ in errors} == {f"profiler.{method}"}
        # The requests are told as before: their spans and their (profile-less) findings.
        assert sorted(s.name for s in c.spans if s.kind is SpanKind.SERVER) == ["GET /async", "GET /sync"]
        found = [f for f in c.findings if f.detector == "latency_budget"]
        assert len(found) == 2 and all("app_profile" not in f.details for f in found)
    finally:
        monkeypatch.undo()
        stop_capture(c)


def test_requests_that_end_just_before_shutdown_keep_their_profile() -> None:
    """shutdown() lets the detectors analyse the last requests before the profiler lets go of their
    samples (the detectors run on their own thread, and drain at shutdown)."""
    from tests.unit.runtime.conftest import reset_api_globals

    import otelperf

    reset_api_globals()
    runtime = otelperf.init(
        service_name="profiled",
        endpoint=closed_port_url(),
        budgets={"*": 30},
        budgets_file="none",
        schedule_delay="30s",
        metric_export_interval="1h",
        flush_on_sigterm=False,
    )
    try:
        asyncio.run(get_all(make_app(), "/sync", "/async"))
    finally:
        otelperf.shutdown(timeout=2)
        reset_api_globals()
    assert runtime.findings is not None
    found = [f for f in runtime.findings.recent() if f.detector == "latency_budget"]
    assert len(found) == 2
    assert all("app_profile" in f.details for f in found), [f.hint for f in found]
    assert profiler.current() is None and profiler_threads() == []
