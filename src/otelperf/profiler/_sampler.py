"""The sampling thread, and the registry that tells it which request a thread or task is serving.

The request path only registers and unregisters (:meth:`Profiler.begin` / :meth:`Profiler.end`:
a few dict writes and a context variable); the sampler thread does the rest. About ``hz`` times a
second it reads every thread's current frame (``sys._current_frames()``) and, for each request
being served:

* on an event loop's thread, only while that request's task is the loop's running task
  (``asyncio.current_task(loop)``); the task is known from the registry or, where tasks expose
  their context (Python 3.12+), from the request's context variable, which child tasks inherit;
* on a worker thread that runs a synchronous handler for the request (Starlette's threadpool,
  see :mod:`._threadpool`), for as long as it runs it.

Each sample is the stack (innermost first, at most ``max_frames`` frames, interned as small ints)
weighted by the nanoseconds since the previous tick, and time-stamped so that the analysis can
drop the samples taken inside a database, cache or HTTP span. Everything is capped: requests
followed at once, samples and distinct stacks per request, finished requests waiting for the
detector, interned frames; each cap counts what it turned away.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import OrderedDict
from contextvars import ContextVar, Token
from types import CodeType, FrameType, MappingProxyType
from typing import Any, cast

from otelperf._runtime import guard as _internal
from otelperf.profiler._lines import line_of

__all__ = ["FRAMES", "Profiler", "RequestSamples"]

_current_task = asyncio.current_task
_running_loop = asyncio.events._get_running_loop
_get_ident = threading.get_ident

# Interned frames, shared by every request: (code, line) -> id and back. Id 0 stands for the
# frames a stack lost to the caps ("more frames" at the root end of a truncated stack).
_MAX_FRAME_IDS = 50_000
FRAMES: list[tuple[CodeType | None, int]] = [(None, 0)]
_FRAME_IDS: dict[tuple[CodeType, int], int] = {}
_MAX_LOOP_THREADS = 256
_MAX_WEIGHT_NS = 1_000_000_000  # a sampler stalled longer (process stopped, machine asleep): 1 s

# Shared by every request without samples; immutable, so that nothing can append to them.
_NO_SAMPLES: list[int] = cast("list[int]", ())
_NO_STACKS: dict[tuple[int, ...], int] = cast("dict[tuple[int, ...], int]", MappingProxyType({}))

CURRENT: ContextVar[RequestSamples | None] = ContextVar("otelperf.profiler.request", default=None)


class RequestSamples:
    """What the sampler saw of one request: parallel lists of sample time, weight and stack index."""

    __slots__ = (
        "active",
        "dropped_samples",
        "dropped_stacks",
        "entry",
        "span_id",
        "stack_ids",
        "stacks",
        "start_ns",
        "task",
        "tasks",
        "times",
        "token",
        "weights",
    )

    def __init__(self, span_id: int, start_ns: int, entry: CodeType | None = None) -> None:
        self.span_id = span_id
        self.start_ns = start_ns
        # The code of the frame that registered the request (the server middleware): stacks on the
        # loop's thread stop there, so what ran the server (or a test's client) is not the request's.
        self.entry = entry
        self.active = True
        self.task: object = None  # the request's own asyncio task
        self.tasks: list[object] | None = None  # other tasks it runs in (a threadpool call from a child task)
        self.token: Token[RequestSamples | None] | None = None
        # Made by the sampler at the first sample (most requests are shorter than one interval):
        self.times: list[int] = _NO_SAMPLES  # time.time_ns() of each sample (the end of its time)
        self.weights: list[int] = _NO_SAMPLES  # nanoseconds each sample stands for
        self.stack_ids: list[int] = _NO_SAMPLES
        self.stacks: dict[tuple[int, ...], int] = _NO_STACKS  # stack (frame ids, innermost first) -> index
        self.dropped_samples = 0
        self.dropped_stacks = 0

    def start_samples(self) -> None:
        """Make the containers of the samples (the sampler, at the request's first sample)."""
        if self.stacks is _NO_STACKS:
            self.times, self.weights, self.stack_ids, self.stacks = [], [], [], {}

    def stack_list(self) -> list[tuple[int, ...]]:
        return list(self.stacks)  # insertion order: the index each stack was given


class Profiler:
    """A sampling profiler of requests. Its thread starts with the first request it follows."""

    def __init__(
        self,
        hz: float = 100.0,
        *,
        max_requests: int = 64,
        max_samples: int = 1000,
        max_stacks: int = 200,
        max_frames: int = 64,
        max_finished: int = 256,
    ) -> None:
        self.interval = 1.0 / hz
        self.max_requests = max_requests
        self.max_samples = max_samples
        self.max_stacks = max_stacks
        self.max_frames = max_frames
        self.max_finished = max_finished
        self._active: dict[int, RequestSamples] = {}
        self._tasks: dict[object, RequestSamples] = {}
        self._threads: dict[int, RequestSamples] = {}
        self._loops: dict[int, asyncio.AbstractEventLoop] = {}
        self._finished: OrderedDict[int, RequestSamples] = OrderedDict()
        self._finished_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()  # set when the first request after an idle spell begins
        self._halt = threading.Event()  # set by stop(): ends the sampler's wait at once
        self._thread: threading.Thread | None = None
        self._stopped = False
        # What the caps turned away, and the sampler's own cost (for `otelperf doctor` and tests).
        self.dropped_requests = 0
        self.evicted_requests = 0
        self.ticks = 0
        self.samples = 0

    # --- the request path -------------------------------------------------------------------
    def begin(self, span_id: int, entry: CodeType | None = None) -> RequestSamples | None:
        """Follow the request being started on this thread's event loop (its current task);
        ``entry``: the code of the caller's frame, where the request's stacks begin."""
        if self._stopped:
            return None
        active = self._active
        if len(active) >= self.max_requests:
            self.dropped_requests += 1
            return None
        record = RequestSamples(span_id, time.time_ns(), entry)
        loop = _running_loop()
        if loop is not None:
            ident = _get_ident()
            loops = self._loops
            if loops.get(ident) is not loop and (ident in loops or len(loops) < _MAX_LOOP_THREADS):
                loops[ident] = loop
            task = _current_task(loop)
            if task is not None:
                record.task = task
                self._tasks[task] = record
        else:  # a server that handles the request on this thread, without a loop
            self._threads[_get_ident()] = record
        record.token = CURRENT.set(record)
        active[id(record)] = record
        if self._thread is None:
            self._start()
        elif len(active) == 1:
            self._wake.set()
        return record

    def end(self, record: RequestSamples) -> None:
        """Stop following the request; keep its samples for the detector (if it has any)."""
        record.active = False
        self._active.pop(id(record), None)
        if record.task is not None:
            self._tasks.pop(record.task, None)
        elif self._threads.get(_get_ident()) is record:
            del self._threads[_get_ident()]
        if record.tasks:
            for task in record.tasks:
                self._tasks.pop(task, None)
        token = record.token
        if token is not None:
            record.token = None
            try:  # noqa: SIM105 - contextlib.suppress costs more than the rest of end()
                CURRENT.reset(token)
            except ValueError:  # ended in another context than it began in: nothing to restore there
                pass
        if record.times:
            with self._finished_lock:
                self._finished[record.span_id] = record
                if len(self._finished) > self.max_finished:
                    self._finished.popitem(last=False)
                    self.evicted_requests += 1

    def enter_thread(self, record: RequestSamples) -> object:
        """On a worker thread starting work for ``record``; returns what :meth:`leave_thread` takes."""
        ident = _get_ident()
        previous = self._threads.get(ident)
        self._threads[ident] = record
        return previous

    def leave_thread(self, previous: object) -> None:
        ident = _get_ident()
        if isinstance(previous, RequestSamples):
            self._threads[ident] = previous
        else:
            self._threads.pop(ident, None)

    def adopt_task(self, record: RequestSamples, task: object) -> None:
        """Attribute another task's time to ``record`` too (until the request ends)."""
        if task is not None and task is not record.task and task not in self._tasks and record.active:
            if record.tasks is None:
                record.tasks = []
            if len(record.tasks) < 16:
                self._tasks[task] = record
                record.tasks.append(task)

    # --- the detector's side ----------------------------------------------------------------
    def take(self, span_id: int) -> RequestSamples | None:
        """The samples of the finished request whose SERVER span is ``span_id`` (once)."""
        if not self._finished:
            return None
        with self._finished_lock:
            return self._finished.pop(span_id, None)

    def following(self) -> int:
        return len(self._active)

    # --- the thread -------------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._stopped:
                return
            thread = threading.Thread(target=self._run, name="otelperf-profiler", daemon=True)
            self._thread = thread
            thread.start()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop sampling and forget every request (the thread ends within one interval)."""
        self._stopped = True
        self._halt.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(timeout)
        self._forget()

    def forget_after_fork(self) -> None:
        """In a forked child: the thread did not survive the fork; start again with the next request."""
        self._thread = None
        self._finished_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._forget()

    def _forget(self) -> None:
        self._active.clear()
        self._tasks.clear()
        self._threads.clear()
        self._loops.clear()
        with self._finished_lock:
            self._finished.clear()

    def _run(self) -> None:
        interval = self.interval
        last = time.time_ns()
        while not self._stopped:
            if not self._active:
                self._wake.clear()
                if not self._active:
                    self._wake.wait(0.5)
                last = time.time_ns()
                continue
            # Not time.sleep: stop() must not wait out an interval (a test suite stops often).
            if self._halt.wait(interval):
                break
            now = time.time_ns()
            try:
                self._tick(now, last)
            except Exception as exc:  # never let the thread die: the next tick may do better
                _internal.record_internal_error("profiler.sample", exc)
            last = now

    def _tick(self, now: int, last: int) -> None:
        self.ticks += 1
        frames = sys._current_frames()
        for ident, loop in list(self._loops.items()):
            frame = frames.get(ident)
            if frame is None:
                if loop.is_closed():
                    self._loops.pop(ident, None)
                continue
            task = _current_task(loop)
            if task is None:
                continue  # the loop is idle, or between tasks
            record = self._tasks.get(task)
            if record is None:
                get_context = getattr(task, "get_context", None)  # Python 3.12+
                if get_context is not None:
                    record = get_context().get(CURRENT)
            if record is not None and record.active:
                self._add(record, frame, now, last)
        for ident, record in list(self._threads.items()):
            frame = frames.get(ident)
            if frame is not None and record.active:
                self._add(record, frame, now, last)

    def _add(self, record: RequestSamples, frame: FrameType, now: int, last: int) -> None:
        if len(record.times) >= self.max_samples:
            record.dropped_samples += 1
            return
        weight = now - max(last, record.start_ns)
        if weight <= 0:
            return
        stack = self._stack(frame, record.entry)
        if record.stacks is _NO_STACKS:
            record.start_samples()
        stacks = record.stacks
        index = stacks.get(stack)
        if index is None:
            if len(stacks) >= self.max_stacks:
                record.dropped_stacks += 1
                stack = (0,)
                index = stacks.get(stack)
            if index is None:
                index = stacks[stack] = len(stacks)
        record.times.append(now)
        record.weights.append(min(weight, _MAX_WEIGHT_NS))
        record.stack_ids.append(index)
        self.samples += 1

    def _stack(self, frame: FrameType | None, entry: CodeType | None) -> tuple[int, ...]:
        ids: list[int] = []
        known = _FRAME_IDS
        left = self.max_frames
        while frame is not None and left > 0:
            code = frame.f_code
            if code is entry:
                return tuple(ids)
            key = (code, line_of(frame))
            frame_id = known.get(key)
            if frame_id is None:
                frame_id = _intern(key)
            ids.append(frame_id)
            frame = frame.f_back
            left -= 1
        if frame is not None:
            ids.append(0)
        return tuple(ids)


def _intern(key: tuple[CodeType, int]) -> int:
    if len(FRAMES) >= _MAX_FRAME_IDS:
        return 0
    frame_id = len(FRAMES)
    FRAMES.append(key)
    _FRAME_IDS[key] = frame_id
    return frame_id


# --- the process's profiler ----------------------------------------------------------------------

_current: Profiler | None = None
_fork_hook = False


def current() -> Profiler | None:
    return _current


def install(profiler: Profiler | None) -> None:
    """Make ``profiler`` the one the server instrumentation registers requests with (None: off)."""
    global _current, _fork_hook
    previous, _current = _current, profiler
    if previous is not None and previous is not profiler:
        previous.stop()
    if profiler is not None and not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook = True


def uninstall(profiler: Profiler) -> None:
    """Stop ``profiler``; it is no longer the process's one if it was."""
    global _current
    if _current is profiler:
        _current = None
    profiler.stop()


def _after_fork_in_child() -> None:
    profiler = _current
    if profiler is not None:
        try:
            profiler.forget_after_fork()
        except Exception as exc:  # pragma: no cover - a hook's exception would only be printed
            _internal.record_internal_error("profiler.fork", exc)


def begin(span: Any) -> RequestSamples | None:
    """For the server instrumentation: follow the request whose SERVER span is ``span`` (None: off)."""
    profiler = _current
    if profiler is None:
        return None
    try:
        context = span.get_span_context()
        if not context.trace_flags.sampled:
            return None  # no detector will see this request
        return profiler.begin(context.span_id, sys._getframe(1).f_code)
    except Exception as exc:  # the request goes on, unprofiled
        _internal.swallow("profiler.begin", exc)
        return None


def end(record: RequestSamples) -> None:
    """For the server instrumentation: the request ``begin`` returned ``record`` for has ended."""
    try:
        profiler = _current
        if profiler is None:  # stopped meanwhile: a profiler of its own keeps nothing, restores the context
            profiler = Profiler(max_finished=0)
        profiler.end(record)
    except Exception as exc:  # the request's span still ends
        _internal.swallow("profiler.end", exc)
