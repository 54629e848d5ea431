"""A forked child exports with its own process.pid and service.instance.id, to a real loopback sink.

The child drops what the parent had queued (the parent sends it) and starts a runtime of its own
behind the same global tracers; a multiprocessing "fork" child is flushed by its exit finalizer.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest
from opentelemetry import trace

import otelperf
from otelperf import _setup
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
