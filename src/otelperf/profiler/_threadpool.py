"""Synchronous handlers: tell the sampler which worker thread runs them for which request.

Starlette and FastAPI run ``def`` routes and dependencies with ``anyio.to_thread.run_sync``, looked
up on the module at each call. While the profiler is on, that function is wrapped: when the
calling task serves a followed request (the profiler's context variable), the worker thread is
registered for that request while it runs the function, and the calling task too (a child task,
e.g. under ``BaseHTTPMiddleware``, on Python versions whose tasks do not show their context).
Anything else goes straight through. ``uninstall`` puts the original back.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from typing import Any

import wrapt

from otelperf.profiler import _sampler

_MODULE = "anyio.to_thread"
_MARK = "__otelperf_profiler__"
_hook_registered = False
_wanted = False


def install() -> None:
    """Wrap ``anyio.to_thread.run_sync`` now, or when anyio is imported."""
    global _hook_registered, _wanted
    _wanted = True
    if _MODULE in sys.modules:
        _patch(sys.modules[_MODULE])
    elif not _hook_registered:
        wrapt.register_post_import_hook(_patch, _MODULE)
        _hook_registered = True


def uninstall() -> None:
    global _wanted
    _wanted = False
    module = sys.modules.get(_MODULE)
    current = getattr(module, "run_sync", None)
    original = getattr(current, _MARK, None)
    if module is not None and original is not None:
        module.run_sync = original  # type: ignore[attr-defined]


def _patch(module: Any) -> None:
    original = getattr(module, "run_sync", None)
    if not _wanted or original is None or getattr(original, _MARK, None) is not None:
        return

    @functools.wraps(original)
    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        record = _sampler.CURRENT.get()
        profiler = _sampler.current()
        if record is None or profiler is None or not record.active:
            return await original(func, *args, **kwargs)
        profiler.adopt_task(record, asyncio.current_task())
        return await original(functools.partial(run_for, profiler, record, func), *args, **kwargs)

    setattr(run_sync, _MARK, original)
    module.run_sync = run_sync


def run_for(
    profiler: _sampler.Profiler, record: _sampler.RequestSamples, func: Callable[..., Any], *args: Any
) -> Any:
    previous = profiler.enter_thread(record)
    try:
        return func(*args)
    finally:
        profiler.leave_thread(previous)
