"""A forked child gets a runtime of its own: its own ``process.pid`` and ``service.instance.id``.

The child inherits the parent's runtime as memory only: its export and detector threads are not
there, its queues hold the parent's spans, its resource names the parent. So, in the child, right
after ``fork()``, the parent's runtime is dropped without flushing (what it had queued is the
parent's to send), and a fresh one is started with the same settings, re-instrumenting the
libraries and taking the place of the old one behind the forwarding global providers.

Fork can happen while another thread of the parent holds a lock: the child gets fresh locks and
never calls into the parent's exporters or their threads. The hook is registered before the first
pipeline is built, so it runs before the SDK's own after-fork hooks of that pipeline's parts (they
run in registration order), which lets it mark those parts as abandoned first.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from otelperf._runtime import global_providers
from otelperf._sdk.metrics import abandon_readers

if TYPE_CHECKING:
    from otelperf._runtime.setup import Runtime

__all__ = ["process_instance_id", "register"]

logger = logging.getLogger("otelperf")

_registered = False
_instance: tuple[int, str] = (-1, "")


def process_instance_id() -> str:
    """A random UUID for this process (semconv ``service.instance.id``); a new one after fork."""
    global _instance
    pid = os.getpid()
    if _instance[0] != pid:
        _instance = (pid, str(uuid.uuid4()))
    return _instance[1]


def register() -> None:
    """Install the after-fork hook once per process (callers hold ``_setup._lock``)."""
    global _registered
    if _registered or not hasattr(os, "register_at_fork"):
        return
    os.register_at_fork(after_in_child=_after_in_child)
    _registered = True


def _after_in_child() -> None:
    try:
        _restart_in_child()
    except Exception:  # a hook's exception would be printed as unraisable; the child must run on
        logger.warning("otelperf could not restart in the forked process %d", os.getpid(), exc_info=True)


def _restart_in_child() -> None:
    from otelperf._runtime import setup as _setup

    _setup._lock = threading.RLock()
    global_providers.reset_after_fork()
    old = _setup._runtime
    if old is None or not old.enabled:
        return
    if global_providers.current_tracer_provider() is not old.tracer_provider:
        # Not a runtime init() started (the pytest plugin's in-memory capture): not ours to replace.
        return
    _setup._runtime = None
    global_providers.deactivate()
    _abandon(old)
    _setup._runtime = _setup.start_or_disable(old.settings)


def _abandon(runtime: Runtime) -> None:
    """Make the parent's runtime inert in this child, without I/O and without flushing."""
    for instrumentor in reversed(runtime._instrumentors):
        try:  # patches hold the parent's tracer; the new runtime patches again
            instrumentor.uninstrument()
        except Exception:
            logger.debug("otelperf could not uninstrument %s after fork", instrumentor.name, exc_info=True)
    runtime._instrumentors.clear()
    if runtime.profiler is not None:
        # Its thread did not survive the fork; the new runtime starts a profiler of its own.
        runtime.profiler.forget_after_fork()
        runtime.profiler.stop()
    if runtime.detector_processor is not None:
        # Its own after-fork hook (which runs after this one) then starts no worker in the child.
        runtime.detector_processor._shutdown = True
    # The SDK's periodic metric reader restarts its thread in the child (its own hook), and would
    # send the parent's cumulative metrics under the parent's resource: stop it and point it at
    # an exporter that sends nothing. Its span batch worker restarts with an empty queue and idles.
    abandon_readers(runtime.meter_provider, _DISCARD)


class _DiscardMetrics(MetricExporter):
    """Where an abandoned reader's last collection goes in a forked child: nowhere."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


_DISCARD = _DiscardMetrics()
