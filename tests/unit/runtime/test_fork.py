"""A forked child exports with its own process.pid and service.instance.id, to a real loopback sink.

The child drops what the parent had queued (the parent sends it) and starts a runtime of its own
behind the same global tracers; a multiprocessing "fork" child is flushed by its exit finalizer.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import metrics, trace

import otelperf
from otelperf._runtime import setup as _setup
from otelperf.testing import OTLPSink

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _start(sink: OTLPSink, schedule_delay: str = "20ms") -> _setup.Runtime:
    runtime = otelperf.init(
        service_name="forking",
        instrument="none",
        endpoint=sink.endpoint,
        schedule_delay=schedule_delay,
        metric_export_interval="60s",
    )
    assert runtime.enabled
    return runtime


def _instance_id(runtime: _setup.Runtime | None) -> str:
    assert runtime is not None and runtime.tracer_provider is not None
    return str(runtime.tracer_provider.resource.attributes["service.instance.id"])


def test_os_fork_child_exports_with_its_own_identity(fresh_globals: None, sink: OTLPSink) -> None:
    # A long batch delay keeps the parent's span queued at fork time: the child must not send it.
    parent_runtime = _start(sink, schedule_delay="30s")
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("parent-before-fork"):
        pass
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            os.close(read_end)
            with tracer.start_as_current_span("child-work"):
                pass
            runtime = _setup.current()
            report = {
                "pid": os.getpid(),
                "instance": _instance_id(runtime),
                "new_runtime": runtime is not parent_runtime,
                "flushed": otelperf.shutdown(timeout=5),
            }
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report["new_runtime"] and report["flushed"]
    assert report["pid"] == pid
    assert report["instance"] != _instance_id(parent_runtime)

    otelperf.shutdown(timeout=5)  # the parent sends its own queued span
    spans = {s.name: s for s in sink.wait_for_spans(lambda s: len(s) >= 2)}
    assert sorted(spans) == ["child-work", "parent-before-fork"]  # each exactly once
    assert spans["child-work"].resource["process.pid"] == pid
    assert spans["child-work"].resource["service.instance.id"] == report["instance"]
    assert spans["parent-before-fork"].resource["process.pid"] == os.getpid()
    assert spans["parent-before-fork"].resource["service.instance.id"] == _instance_id(parent_runtime)
    assert len(sink.snapshot()) == 2


def _mp_child(results: multiprocessing.Queue[int]) -> None:
    with trace.get_tracer("app").start_as_current_span("mp-child-work"):
        pass
    results.put(os.getpid())
    # No shutdown here: multiprocessing's exit finalizers must flush.


def test_multiprocessing_fork_child_is_flushed_at_exit(fresh_globals: None, sink: OTLPSink) -> None:
    parent_runtime = _start(sink, schedule_delay="30s")
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[int] = ctx.Queue()
    process = ctx.Process(target=_mp_child, args=(results,))
    process.start()
    child_pid = results.get(timeout=20)
    process.join(20)
    assert process.exitcode == 0
    spans = sink.wait_for_spans(lambda s: any(x.name == "mp-child-work" for x in s))
    [child_span] = [s for s in spans if s.name == "mp-child-work"]
    assert child_span.resource["process.pid"] == child_pid
    assert child_span.resource["service.instance.id"] != _instance_id(parent_runtime)


def _fork_and_report(child: Callable[[], dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Run ``child`` in a forked process (killed by SIGALRM after 20 s); return its pid and report."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(20)  # a deadlock in the child fails the test instead of hanging it
            os.close(read_end)
            os.write(write_end, json.dumps(child()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed or hung"
    return pid, report


def test_an_app_instrumented_in_the_parent_is_traced_by_the_child_as_the_child(
    fresh_globals: None, sink: OTLPSink
) -> None:
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    otelperf.init(service_name="forking", instrument="fastapi", endpoint=sink.endpoint, schedule_delay="20ms")

    def child() -> dict[str, Any]:
        with TestClient(app) as client:
            status = client.get("/items/1").status_code
        return {"status": status, "flushed": otelperf.shutdown(timeout=5)}

    child_pid, report = _fork_and_report(child)
    assert report == {"status": 200, "flushed": True}
    with TestClient(app) as client:  # the parent's instrumentation is untouched by the fork
        assert client.get("/items/2").status_code == 200
    otelperf.shutdown(timeout=5)

    spans = sink.wait_for_spans(lambda s: len([x for x in s if x.kind == "SERVER"]) >= 2)
    servers = sorted(
        (s.attributes.get("url.path"), s.resource["process.pid"]) for s in spans if s.kind == "SERVER"
    )
    assert servers == [("/items/1", child_pid), ("/items/2", os.getpid())]  # one span per request


def test_fork_while_another_thread_holds_otelperfs_lock(fresh_globals: None, sink: OTLPSink) -> None:
    _start(sink)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _setup._lock:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(10)
    try:

        def child() -> dict[str, Any]:
            with trace.get_tracer("app").start_as_current_span("child-under-held-lock"):
                pass
            flushed = otelperf.shutdown(timeout=5)
            again = otelperf.init(service_name="forking", instrument="none", endpoint=sink.endpoint)
            return {"flushed": flushed, "restarted": again.enabled, "stopped": otelperf.shutdown(timeout=5)}

        child_pid, report = _fork_and_report(child)
    finally:
        release.set()
        holder.join(10)
    assert report == {"flushed": True, "restarted": True, "stopped": True}
    [span] = sink.wait_for_spans(lambda s: len(s) >= 1)
    assert (span.name, span.resource["process.pid"]) == ("child-under-held-lock", child_pid)


def test_the_child_never_sends_the_parents_metrics(fresh_globals: None, sink: OTLPSink) -> None:
    otelperf.init(
        service_name="forking", instrument="none", endpoint=sink.endpoint, metric_export_interval="100ms"
    )
    metrics.get_meter("app").create_counter("app.parent.requests").add(1)
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.alarm(20)
            os.close(go_write)
            os.read(go_read, 1)  # the parent has stopped and the sink is empty
            time.sleep(1.0)  # ten of the parent's export intervals
            otelperf.shutdown(timeout=5)
            code = 0
        finally:
            os._exit(code)
    os.close(go_read)
    otelperf.shutdown(timeout=5)  # the parent's last metrics, before the sink is emptied
    assert any(m.name == "app.parent.requests" for m in sink.metrics)
    sink.reset()
    os.write(go_write, b"g")
    os.close(go_write)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    senders = {m.resource["process.pid"] for m in sink.metrics}
    assert os.getpid() not in senders, "the child sent the parent's metrics under the parent's resource"
