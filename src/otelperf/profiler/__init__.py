"""A sampling profiler of requests: where a request's "app" time went.

A daemon thread samples, about ``profiler_hz`` times a second, the stacks of the threads and
asyncio tasks serving requests and files each sample under its request (:mod:`._sampler`); the
latency-budget detector turns the samples of an over-budget request into the functions its app
time went to, with milliseconds and lines (:mod:`.analysis`). The request path only registers
and unregisters the request. Settings: ``profiler`` and ``profiler_hz`` (docs/configuration.md);
what it cannot see: docs/detectors.md#where-app-time-goes.

    profiler = Profiler(hz=100)
    install(profiler)          # otelperf's setup does this when the setting is on
    ...                        # requests are registered by the server instrumentation
    samples = profiler.take(span_id)  # after the request ended: once
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otelperf.profiler import _threadpool
from otelperf.profiler._sampler import Profiler, RequestSamples, begin, current, end
from otelperf.profiler._sampler import install as _install
from otelperf.profiler._sampler import uninstall as _uninstall

if TYPE_CHECKING:
    from otelperf.profiler.analysis import AppProfile, HotFunction, analyze

__all__ = [
    "AppProfile",
    "HotFunction",
    "Profiler",
    "RequestSamples",
    "analyze",
    "begin",
    "current",
    "end",
    "install",
    "take",
    "uninstall",
]


def install(profiler: Profiler) -> None:
    """Make ``profiler`` the process's profiler (the one before it stops) and follow sync handlers."""
    _install(profiler)
    _threadpool.install()


def uninstall(profiler: Profiler) -> None:
    """Stop ``profiler``; when it was the process's profiler, the profiler is off."""
    if current() is profiler:
        _threadpool.uninstall()
    _uninstall(profiler)


def take(span_id: int) -> RequestSamples | None:
    """The samples of the finished request whose SERVER span id is ``span_id``, once; None when the
    profiler is off or saw nothing of it."""
    profiler = current()
    return None if profiler is None else profiler.take(span_id)


_LAZY = ("AppProfile", "HotFunction", "analyze")


def __getattr__(name: str) -> Any:
    # The analysis (and sysconfig, which it needs to tell libraries from the app) is imported when a
    # finding first needs it, not with the server instrumentation.
    if name in _LAZY:
        from otelperf.profiler import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'otelperf.profiler' has no attribute {name!r}")
