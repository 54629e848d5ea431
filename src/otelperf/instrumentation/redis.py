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
(:mod:`otelperf.instrumentation._leaf`): written in one step when the command is over and never
the current span while it runs (nothing is a child of a Redis command); span processors get its
``on_end`` without an ``on_start``. Root commands, unsampled parents and pipelines that load Lua
scripts (whose ``SCRIPT EXISTS``/``SCRIPT LOAD`` spans are its children) take the API path, with
the span current during the call.

Not covered: ``RedisCluster`` (it sends commands through its own node connections, not through
``Redis.execute_command``), pub/sub and ``MONITOR``.
"""

from __future__ import annotations

import contextlib
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
from otelperf._internal import guard
from otelperf.instrumentation._base import InstrumentContext, Instrumentor
from otelperf.instrumentation._leaf import LeafSpans
from otelperf.instrumentation.cache import CacheStats, instrumentation_suppressed, key_hash, stats_for

__all__ = ["INSTRUMENTOR", "RedisInstrumentor", "operation_name", "pipeline_query_text", "query_text"]

CACHE_NAME = "redis"
OTHER_OPERATION = "_OTHER"
PIPELINE_OPERATION = "PIPELINE"
MAX_PIPELINE_TEXT_COMMANDS = 100
MAX_KEY_HASHES = 32

# Reads with cache semantics: a nil reply is a miss. The multi-key ones count every key.
SINGLE_KEY_READS = frozenset({"GET", "HGET", "GETEX", "GETDEL", "JSON.GET"})
MULTI_KEY_READS = frozenset({"MGET", "HMGET"})

# Commands whose second word is a subcommand ("CLIENT SETNAME"), and so part of the operation name.
CONTAINER_COMMANDS = frozenset({
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY",
    "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
})  # fmt: skip

# Parsed first arguments, and every operation name seen. Both bounded: a client can send anything
# as a command, and an operation name is a metric attribute.
_MAX_PARSED = 1024
_MAX_OPERATIONS = 512
_parsed: dict[Any, tuple[str, int, bool]] = {}
_operations: set[str] = set()
_parse_lock = threading.Lock()


def _word(raw: Any) -> str:
    if isinstance(raw, bytes | bytearray):
        return raw.decode("utf-8", "replace")
    return str(raw)


def _looks_like_command(word: str) -> bool:
    return 0 < len(word) <= 32 and all(c.isalnum() or c in "._-|" for c in word)


def _parse_first(first: Any) -> tuple[str, int, bool]:
    """(operation name, argument words left in it, whether the subcommand is the next argument).

    redis-py splits a first argument with spaces into words ("GET key" sends GET and key), so
    only its first word, or first two for a container command, name the operation; the rest
    are arguments.
    """
    words = _word(first).split()
    if not words:
        return OTHER_OPERATION, 0, False
    name = words[0].upper()
    used = 1
    if name in CONTAINER_COMMANDS and len(words) > 1:
        name, used = f"{name} {words[1].upper()}", 2
    if not all(_looks_like_command(part) for part in name.split(" ")):
        name = OTHER_OPERATION
    return name, len(words) - used, used == 1 and name in CONTAINER_COMMANDS


def _bounded(name: str) -> str:
    if name in _operations:
        return name
    with _parse_lock:
        if len(_operations) >= _MAX_OPERATIONS:
            return OTHER_OPERATION
        _operations.add(name)
    return name


def _operation(args: Sequence[Any]) -> tuple[str, int]:
    """(operation name, number of arguments after it) for one command's args."""
    first = args[0]
    try:
        parsed = _parsed.get(first)
    except TypeError:  # unhashable: parse it every time
        parsed = None
    if parsed is None:
        parsed = _parse_first(first)
        parsed = (_bounded(parsed[0]), parsed[1], parsed[2])
        if len(_parsed) < _MAX_PARSED:
            with contextlib.suppress(TypeError):
                _parsed[first] = parsed
    name, leftover, wants_subcommand = parsed
    arguments = leftover + len(args) - 1
    if wants_subcommand and len(args) > 1:
        sub = _word(args[1]).upper()
        if _looks_like_command(sub):
            # Called as ("CONFIG", "GET", ...): rare, so not worth a cache of its own.
            name, arguments = _bounded(f"{name} {sub}"), arguments - 1
    return name, arguments


def operation_name(args: Sequence[Any]) -> str:
    """The span name and ``db.operation.name`` of a command, e.g. ``GET`` or ``CLIENT SETNAME``."""
    return _operation(args)[0] if args else OTHER_OPERATION


def query_text(args: Sequence[Any]) -> str:
    """The command with one ``?`` per argument: ``SET ? ?``. Argument values never appear."""
    if not args:
        return OTHER_OPERATION
    name, arguments = _operation(args)
    return name + " ?" * arguments


def pipeline_query_text(commands: Sequence[Any]) -> str:
    """One sanitized line per queued command (``GET ?\\nSET ? ?``), at most the first 100."""
    lines = [query_text(entry[0]) for entry in commands[:MAX_PIPELINE_TEXT_COMMANDS]]
    if len(commands) > MAX_PIPELINE_TEXT_COMMANDS:
        lines.append(f"... {len(commands) - MAX_PIPELINE_TEXT_COMMANDS} more")
    return "\n".join(lines)


def cache_result(operation: str, result: Any) -> tuple[int, int] | None:
    """(hits, misses) for a read with cache semantics, or None for any other command."""
    if operation in SINGLE_KEY_READS:
        return (0, 1) if result is None else (1, 0)
    if operation in MULTI_KEY_READS and isinstance(result, list | tuple):
        misses = sum(1 for item in result if item is None)
        return len(result) - misses, misses
    return None


def _key_bytes(raw: Any) -> bytes:
    # redis-py sends str keys UTF-8 encoded and numbers as their str(): hash what Redis sees, so
    # "k" and b"k" are one key.
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    return str(raw).encode("utf-8", "surrogateescape")


def _read_keys(operation: str, args: Sequence[Any]) -> list[bytes]:
    """The cache keys a read looks up, in the order of its reply (HGET/HMGET: key and field)."""
    if len(args) < 2 or _word(args[0]).upper() != operation:
        return []  # "GET key" in one string, or no key: nothing to say
    if operation in ("HGET", "HMGET"):
        key = _key_bytes(args[1])
        return [key + b"\x00" + _key_bytes(f) for f in args[2:]]
    if operation in MULTI_KEY_READS:
        return [_key_bytes(k) for k in args[1:]]
    return [_key_bytes(args[1])]


def missed_key_hashes(operation: str, args: Sequence[Any], result: Any) -> list[str]:
    """Salted hashes of the keys a read did not find (at most ``MAX_KEY_HASHES``)."""
    keys = _read_keys(operation, args)
    if not keys:
        return []
    if operation in SINGLE_KEY_READS:
        return [key_hash(keys[0])] if result is None else []
    if not isinstance(result, list | tuple):
        return []
    missed = [key for key, item in zip(keys, result, strict=False) if item is None]
    return [key_hash(key) for key in dict.fromkeys(missed[:MAX_KEY_HASHES])]


def _pipeline_missed_key_hashes(stack: Sequence[Any], results: Any) -> list[str]:
    if not isinstance(results, list) or len(results) != len(stack):
        return []
    hashes: dict[str, None] = {}
    for entry, result in zip(stack, results, strict=True):
        if isinstance(result, Exception):
            continue
        for h in missed_key_hashes(operation_name(entry[0]), entry[0], result):
            hashes[h] = None
            if len(hashes) >= MAX_KEY_HASHES:
                return list(hashes)
    return list(hashes)


def _server_attributes(instance: Any) -> dict[str, Any]:
    pool = getattr(instance, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    attributes: dict[str, Any] = {_names.DB_NAMESPACE: str(kwargs.get("db", 0) or 0)}
    if kwargs.get("path"):
        attributes[_names.SERVER_ADDRESS] = str(kwargs["path"])
    elif kwargs.get("host"):
        attributes[_names.SERVER_ADDRESS] = str(kwargs["host"])
        if kwargs.get("port") is not None:
            attributes[_names.SERVER_PORT] = int(kwargs["port"])
    return attributes


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

    def instrument(self, ctx: InstrumentContext) -> None:
        with self._lock:
            if self._patched:
                return
            import redis.asyncio.client
            import redis.client

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
            targets: list[tuple[type, str, Any]] = [
                (redis.client.Redis, "execute_command", self._command),
                (redis.client.Pipeline, "immediate_execute_command", self._command),
                (redis.client.Pipeline, "execute", self._pipeline),
                (redis.asyncio.client.Redis, "execute_command", self._command_async),
                (redis.asyncio.client.Pipeline, "immediate_execute_command", self._command_async),
                (redis.asyncio.client.Pipeline, "execute", self._pipeline_async),
            ]
            try:
                for cls, attribute, wrapper in targets:
                    original = cls.__dict__[attribute]
                    wrapt.wrap_function_wrapper(cls, attribute, wrapper)
                    self._patched.append((cls, attribute, original, cls.__dict__[attribute]))
            except Exception:
                self._restore()
                raise

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
        pending = self._begin(tracer, _pipeline_span_name(instance), not getattr(instance, "scripts", None))
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
        pending = self._begin(tracer, _pipeline_span_name(instance), not getattr(instance, "scripts", None))
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
            with guard("redis.finish"):
                counts = None
                if exc is None:
                    counts = (
                        cache_result(operation, result) if stack is None else _pipeline_counts(stack, result)
                    )
                leaf = pending.leaf
                if leaf is not None:
                    assert pending.parent is not None
                    attributes = _attributes(
                        instance, operation, args=args, stack=stack, counts=counts, exc=exc, result=result
                    )
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
                metric_attributes = {_names.DB_SYSTEM_NAME: "redis", _names.DB_OPERATION_NAME: operation}
                if exc is not None:
                    metric_attributes[_names.ERROR_TYPE] = type(exc).__qualname__
                duration_histogram, stats = self._duration, self._stats
                if duration_histogram is not None:
                    duration_histogram.record(duration, metric_attributes)
                if counts is not None and stats is not None:
                    stats.record(CACHE_NAME, counts[0], counts[1])
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


def _pipeline_span_name(instance: Any) -> str:
    # asyncio's Pipeline says is_transaction (its `transaction` is the Redis.transaction method);
    # the sync one keeps the flag in `transaction`.
    transaction = getattr(instance, "is_transaction", None)
    if not isinstance(transaction, bool):
        transaction = getattr(instance, "transaction", False) is True
    return "MULTI" if transaction or getattr(instance, "explicit_transaction", False) else PIPELINE_OPERATION


def _pipeline_counts(stack: Sequence[Any], results: Any) -> tuple[int, int] | None:
    """Summed (hits, misses) of the cache reads in a pipeline; None when it had none."""
    if not isinstance(results, list) or len(results) != len(stack):
        return None
    hits = misses = 0
    seen = False
    for entry, result in zip(stack, results, strict=True):
        if isinstance(result, Exception):
            continue
        counts = cache_result(operation_name(entry[0]), result)
        if counts is not None:
            seen = True
            hits += counts[0]
            misses += counts[1]
    return (hits, misses) if seen else None


def _attributes(
    instance: Any,
    operation: str,
    *,
    args: tuple[Any, ...] | None,
    stack: Sequence[Any] | None,
    counts: tuple[int, int] | None,
    exc: BaseException | None,
    result: Any = None,
) -> dict[str, Any]:
    attributes = _server_attributes(instance)
    attributes[_names.DB_SYSTEM_NAME] = "redis"
    attributes[_names.DB_OPERATION_NAME] = operation
    attributes[_names.COMPONENT] = _names.COMPONENT_CACHE
    if stack is not None:
        attributes[_names.DB_QUERY_TEXT] = pipeline_query_text(stack)
        attributes[_names.REDIS_PIPELINE_LENGTH] = len(stack)
    elif args is not None:
        attributes[_names.DB_QUERY_TEXT] = query_text(args)
    if counts is not None:
        hits, misses = counts
        attributes[_names.CACHE_NAME] = CACHE_NAME
        attributes[_names.CACHE_HIT] = misses == 0
        if stack is not None or operation in MULTI_KEY_READS:
            attributes[_names.CACHE_HITS] = hits
            attributes[_names.CACHE_MISSES] = misses
        if misses:
            if stack is not None:
                hashes = _pipeline_missed_key_hashes(stack, result)
            else:
                hashes = missed_key_hashes(operation, args or (), result)
            if hashes and stack is None and operation in SINGLE_KEY_READS:
                attributes[_names.CACHE_KEY_HASH] = hashes[0]
            elif hashes:
                attributes[_names.CACHE_KEY_HASHES] = tuple(hashes)  # as the SDK stores a sequence
    if exc is not None:
        # Only the type: a Redis error message can quote the command's arguments.
        attributes[_names.ERROR_TYPE] = type(exc).__qualname__
    return attributes


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
        _attributes(instance, operation, args=args, stack=stack, counts=counts, exc=exc, result=result)
    )


INSTRUMENTOR = RedisInstrumentor()
