"""Redis instrumentation (redis-py, sync and asyncio): one CLIENT span per command or pipeline.

Patched, with ``wrapt``, and restored exactly by ``uninstrument``:

- ``redis.Redis.execute_command`` and ``redis.asyncio.Redis.execute_command``: a span per command,
  named by the command (``GET``). The async wrapper is itself a coroutine, so the span covers the
  awaited round trip, not the creation of the coroutine.
- ``Pipeline.execute`` (sync and async): one span ``PIPELINE`` (``MULTI`` for a transaction) for
  the whole batch, with the number of commands and their sanitized text.
- ``Pipeline.immediate_execute_command``: the commands a pipeline sends at once (``WATCH`` and
  the reads after it), which do not go through ``execute_command``.

``db.query.text`` is the command followed by one ``?`` per argument: keys can be personal data
and values secrets, so no argument ever reaches an attribute, and error descriptions are left
out for the same reason (Redis echoes arguments in some error messages).

Reads that a cache does (GET, MGET...) carry ``otelperf.cache.hit`` and count into the shared
``otelperf.cache.requests``/``otelperf.cache.hit_ratio`` metrics under the cache name ``redis``.
A read that misses carries the salted hash of its key (:func:`otelperf.instrumentation.cache.key_hash`,
the in-process caches' function; never the key): ``otelperf.cache.key_hash`` for GET/HGET...,
``otelperf.cache.key_hashes`` (the keys that missed, at most 32) for MGET/HMGET and pipelines, so
the cache detector can tell many requests missing one hot key (a miss storm) from cold keys.

Under a sampled parent span a command's span is a leaf span
(:mod:`otelperf._sdk.leaf`): written in one step when the command is over and never
the current span while it runs (nothing is a child of a Redis command); span processors get its
``on_end`` without an ``on_start``. Root commands, unsampled parents and pipelines that load Lua
scripts (whose ``SCRIPT EXISTS``/``SCRIPT LOAD`` spans are its children) take the API path, with
the span current during the call.

Each command's and pipeline's span carries its call site (``code.*``,
:mod:`otelperf.instrumentation._callsite`) unless ``call_sites`` is off.

How a command is named, sanitized and counted as a cache read is in
:mod:`otelperf.instrumentation._redis_commands`; this module patches redis-py and manages the spans.

Not covered: ``RedisCluster`` (it sends commands through its own node connections, not through
``Redis.execute_command``), pub/sub and ``MONITOR``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Histogram
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer

from otelperf import _names
from otelperf._runtime.guard import swallow
from otelperf._sdk.leaf import LeafSpans
from otelperf._sdk.suppression import instrumentation_suppressed
from otelperf.instrumentation._base import InstrumentContext, Instrumentor
from otelperf.instrumentation._callsite import CallSites
from otelperf.instrumentation._redis_commands import (
    CACHE_NAME,
    PIPELINE_OPERATION,
    cache_result,
    operation_name,
    pipeline_counts,
    pipeline_query_text,
    pipeline_span_name,
    query_text,
    span_attributes,
)
from otelperf.instrumentation.cache import CacheStats, stats_for

_CLIENT_MODULES = ("redis.client", "redis.asyncio.client")  # patched when the app imports them

__all__ = ["INSTRUMENTOR", "RedisInstrumentor", "operation_name", "pipeline_query_text", "query_text"]


class RedisInstrumentor(Instrumentor):
    name = "redis"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (class, attribute, original from the class __dict__, our wrapper) for exact restoration
        self._patched: list[tuple[type, str, Any, Any]] = []
        self._tracer: Tracer | None = None
        self._leaf: LeafSpans | None = None  # only when the tracer is the SDK's
        self._duration: Histogram | None = None
        self._stats: CacheStats | None = None
        self._sites: CallSites | None = None  # where commands are sent from; None: call sites off
        self._import_hooks_registered: set[str] = set()

    def instrument(self, ctx: InstrumentContext) -> None:
        with self._lock:
            if self._tracer is not None:
                return
            self._tracer = ctx.tracer
            leaf = LeafSpans(ctx.tracer)
            self._leaf = leaf if leaf.enabled else None
            self._duration = ctx.meter.create_histogram(
                _names.METRIC_DB_CLIENT_DURATION,
                unit="s",
                description="Duration of database client operations",
                explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
            )
            self._stats = stats_for(ctx.meter)
            self._sites = CallSites() if getattr(ctx.settings, "call_sites", True) else None
        # redis-py's clients are patched when the app imports them, not before: importing them
        # here cost an app that never uses Redis ~40 ms of start-up (benchmarks/testsuite.py).
        for module_name in _CLIENT_MODULES:
            module = sys.modules.get(module_name)
            if module is not None:
                self._patch_module(module)
            elif module_name not in self._import_hooks_registered:
                # wrapt keeps a hook until the module is imported and offers no way to remove
                # it: register each once per process; it patches only while instrumented.
                self._import_hooks_registered.add(module_name)
                wrapt.register_post_import_hook(self._on_import, module_name)

    def _on_import(self, module: Any) -> None:
        try:
            self._patch_module(module)
        except Exception as exc:
            swallow("redis.import_hook", exc)

    def _patch_module(self, module: Any) -> None:
        with self._lock:
            if self._tracer is None:
                return
            sync = module.__name__ == "redis.client"
            targets: list[tuple[type, str, Any]] = [
                (module.Redis, "execute_command", self._command if sync else self._command_async),
                (
                    module.Pipeline,
                    "immediate_execute_command",
                    self._command if sync else self._command_async,
                ),
                (module.Pipeline, "execute", self._pipeline if sync else self._pipeline_async),
            ]
            done: list[tuple[type, str, Any, Any]] = []
            try:
                for cls, attribute, wrapper in targets:
                    if any(c is cls and a == attribute for c, a, _, _ in self._patched):
                        continue
                    original = cls.__dict__[attribute]
                    wrapt.wrap_function_wrapper(cls, attribute, wrapper)
                    done.append((cls, attribute, original, cls.__dict__[attribute]))
            except Exception:
                for cls, attribute, original, ours in reversed(done):
                    if cls.__dict__.get(attribute) is ours:
                        setattr(cls, attribute, original)
                raise
            self._patched.extend(done)

    def uninstrument(self) -> None:
        with self._lock:
            self._restore()

    def _restore(self) -> None:
        for cls, attribute, original, ours in reversed(self._patched):
            # Someone who wrapped on top of us keeps their wrapper; ours inside it then passes
            # straight through, because the tracer is gone.
            if cls.__dict__.get(attribute) is ours:
                setattr(cls, attribute, original)
        self._patched.clear()
        self._tracer = None
        self._leaf = None
        self._duration = None
        self._stats = None

    # --- single commands ---------------------------------------------------------------------

    def _command(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tracer = self._tracer
        if tracer is None or not args or instrumentation_suppressed():
            return wrapped(*args, **kwargs)
        operation = operation_name(args)
        pending = self._begin(tracer, operation, True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._finish(pending, instance, operation, args=args, exc=exc)
            raise
        self._finish(pending, instance, operation, args=args, result=result)
        return result

    async def _command_async(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tracer = self._tracer
        if tracer is None or not args or instrumentation_suppressed():
            return await wrapped(*args, **kwargs)
        operation = operation_name(args)
        pending = self._begin(tracer, operation, True)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._finish(pending, instance, operation, args=args, exc=exc)
            raise
        self._finish(pending, instance, operation, args=args, result=result)
        return result

    # --- pipelines ------------------------------------------------------------------------------

    def _pipeline(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tracer = self._tracer
        # The stack is read now: execute() resets the pipeline (to a new list) when done.
        stack = getattr(instance, "command_stack", None)
        if tracer is None or not stack or instrumentation_suppressed():
            return wrapped(*args, **kwargs)
        # A pipeline with Lua scripts loads them first (SCRIPT EXISTS/LOAD, through the patched
        # immediate_execute_command): those spans are children of this one, so it is no leaf.
        pending = self._begin(tracer, pipeline_span_name(instance), not getattr(instance, "scripts", None))
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._finish(pending, instance, PIPELINE_OPERATION, stack=stack, exc=exc)
            raise
        self._finish(pending, instance, PIPELINE_OPERATION, stack=stack, result=result)
        return result

    async def _pipeline_async(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tracer = self._tracer
        stack = getattr(instance, "command_stack", None)
        if tracer is None or not stack or instrumentation_suppressed():
            return await wrapped(*args, **kwargs)
        # A pipeline with Lua scripts loads them first (SCRIPT EXISTS/LOAD, through the patched
        # immediate_execute_command): those spans are children of this one, so it is no leaf.
        pending = self._begin(tracer, pipeline_span_name(instance), not getattr(instance, "scripts", None))
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._finish(pending, instance, PIPELINE_OPERATION, stack=stack, exc=exc)
            raise
        self._finish(pending, instance, PIPELINE_OPERATION, stack=stack, result=result)
        return result

    # --- shared ----------------------------------------------------------------------------------

    def _begin(self, tracer: Tracer, span_name: str, leaf_ok: bool) -> _Pending:
        """Start a command's span: a leaf span to be under a sampled parent, else an API span.

        A leaf is never current. redis-py runs no traced work inside a command (connection
        set-up talks to the socket directly); a pipeline that loads scripts does, and passes
        ``leaf_ok=False``. Anything a connection hook traces (a credential provider calling out
        over HTTP) is the caller's child, not the command's, under a sampled parent.
        """
        pending = _Pending(span_name)
        leaf = self._leaf
        if leaf is not None and leaf_ok:
            parent = trace.get_current_span().get_span_context()
            if parent.is_valid and parent.trace_flags.sampled:
                pending.leaf, pending.parent, pending.start_ns = leaf, parent, time.time_ns()
                pending.start = time.perf_counter()
                return pending
        span = pending.span = tracer.start_span(span_name, kind=SpanKind.CLIENT)
        pending.token = otel_context.attach(trace.set_span_in_context(span))
        pending.start = time.perf_counter()
        return pending

    def _finish(
        self,
        pending: _Pending,
        instance: Any,
        operation: str,
        *,
        args: tuple[Any, ...] | None = None,
        stack: Sequence[Any] | None = None,
        result: Any = None,
        exc: BaseException | None = None,
    ) -> None:
        duration = time.perf_counter() - pending.start
        span = pending.span
        try:
            try:
                counts = None
                if exc is None:
                    counts = (
                        cache_result(operation, result) if stack is None else pipeline_counts(stack, result)
                    )
                leaf = pending.leaf
                sites = self._sites
                # The stack here is the command's: _finish runs inside the patched method.
                site = None if sites is None or (leaf is None and span is None) else sites.site(operation)
                if leaf is not None:
                    assert pending.parent is not None
                    attributes = span_attributes(
                        instance, operation, args=args, stack=stack, counts=counts, exc=exc, result=result
                    )
                    if site is not None:
                        attributes.update(site.attributes)
                    leaf.emit(
                        pending.span_name,
                        SpanKind.CLIENT,
                        pending.parent,
                        pending.start_ns,
                        time.time_ns(),
                        attributes,
                        (),
                        exc is not None,
                    )
                elif span is not None and span.is_recording():
                    _label(
                        span,
                        instance,
                        operation,
                        args=args,
                        stack=stack,
                        counts=counts,
                        exc=exc,
                        result=result,
                    )
                    if site is not None:
                        span.set_attributes(site.attributes)
                metric_attributes = {_names.DB_SYSTEM_NAME: "redis", _names.DB_OPERATION_NAME: operation}
                if exc is not None:
                    metric_attributes[_names.ERROR_TYPE] = type(exc).__qualname__
                duration_histogram, stats = self._duration, self._stats
                if duration_histogram is not None:
                    duration_histogram.record(duration, metric_attributes)
                if counts is not None and stats is not None:
                    stats.record(CACHE_NAME, counts[0], counts[1])
            except Exception as error:  # a generator-based guard costs more than this work
                swallow("redis.finish", error)
        finally:
            if span is not None:
                otel_context.detach(pending.token)  # type: ignore[arg-type]
                span.end()


class _Pending:
    """One command or pipeline in flight: an API span made current, or a leaf span to be."""

    __slots__ = ("leaf", "parent", "span", "span_name", "start", "start_ns", "token")

    def __init__(self, span_name: str) -> None:
        self.span_name = span_name
        self.leaf: LeafSpans | None = None
        self.parent: SpanContext | None = None
        self.start_ns = 0
        self.start = 0.0
        self.span: Span | None = None
        self.token: object = None


def _label(
    span: Span,
    instance: Any,
    operation: str,
    *,
    args: tuple[Any, ...] | None,
    stack: Sequence[Any] | None,
    counts: tuple[int, int] | None,
    exc: BaseException | None,
    result: Any = None,
) -> None:
    if exc is not None:
        span.set_status(Status(StatusCode.ERROR))
    span.set_attributes(
        span_attributes(instance, operation, args=args, stack=stack, counts=counts, exc=exc, result=result)
    )


INSTRUMENTOR = RedisInstrumentor()
