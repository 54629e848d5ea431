"""What a Redis command means to otelperf, without touching redis-py or a span.

Pure functions of a command's arguments and reply, used by :mod:`otelperf.instrumentation.redis`:
the operation name and sanitized ``db.query.text`` (never an argument value), cache hits and
misses of the reads with cache semantics, the salted hashes of the keys that missed, and the span
attributes built from all of these.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from otelperf import _names
from otelperf.instrumentation.cache import key_hash

__all__ = [
    "CACHE_NAME",
    "PIPELINE_OPERATION",
    "cache_result",
    "missed_key_hashes",
    "operation_name",
    "pipeline_counts",
    "pipeline_query_text",
    "pipeline_span_name",
    "query_text",
    "server_attributes",
    "span_attributes",
]

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


def server_attributes(instance: Any) -> dict[str, Any]:
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


def pipeline_span_name(instance: Any) -> str:
    # asyncio's Pipeline says is_transaction (its `transaction` is the Redis.transaction method);
    # the sync one keeps the flag in `transaction`.
    transaction = getattr(instance, "is_transaction", None)
    if not isinstance(transaction, bool):
        transaction = getattr(instance, "transaction", False) is True
    return "MULTI" if transaction or getattr(instance, "explicit_transaction", False) else PIPELINE_OPERATION


def pipeline_counts(stack: Sequence[Any], results: Any) -> tuple[int, int] | None:
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


def span_attributes(
    instance: Any,
    operation: str,
    *,
    args: tuple[Any, ...] | None,
    stack: Sequence[Any] | None,
    counts: tuple[int, int] | None,
    exc: BaseException | None,
    result: Any = None,
) -> dict[str, Any]:
    attributes = server_attributes(instance)
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
