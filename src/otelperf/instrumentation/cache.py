"""In-process cache instrumentation, and the cache metrics shared with the Redis instrumentation.

``instrument_cache`` makes lookups in an in-process cache visible:

- a function decorated with ``functools.lru_cache``/``cache`` (anything with ``cache_info()``)
  becomes a :class:`InstrumentedCachedFunction`: one INTERNAL span ``cache.get <name>`` per call,
  covering the load on a miss, so the loader's own spans (queries...) nest under it;
- a dict-like cache (``dict``, ``cachetools.TTLCache``...) becomes an :class:`InstrumentedCache`
  proxy: ``[key]``/``get`` give ``cache.get <name>`` spans, ``[key] = v``/``setdefault`` give
  ``cache.set <name>``, ``del``/``pop`` give ``cache.delete <name>``. The proxy still passes
  ``isinstance`` checks for the wrapped class, so ``cachetools.cached(proxy)`` works.

Tracer and meter are looked up when a lookup happens, not when the cache is wrapped, so a cache
wrapped at import time (before ``otelperf.init()``) is traced once otelperf runs, and costs one
function call per lookup while it does not.

Under a sampled parent span, the dict-like cache's spans are leaf spans
(:mod:`otelperf._sdk.leaf`): written in one step when the operation is over, never
current while it runs; span processors get their ``on_end`` without an ``on_start``. Spans that
code can run under keep the API path and are current during the call: every
``InstrumentedCachedFunction`` call (a miss runs the loader) and ``[key]`` on a cache whose
``__missing__`` may load (``defaultdict``, a cachetools subclass that overrides it). So do root
operations and those under an unsampled parent.

Each span carries the lookup's call site (``code.*``, :mod:`otelperf.instrumentation._callsite`)
unless ``call_sites`` is off.

:class:`CacheStats` holds, per meter, the ``otelperf.cache.requests`` counter and the in-process
hit/miss counts behind the ``otelperf.cache.hit_ratio`` gauge; Redis reads record into it too.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import (
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    get_current_span,
)

from otelperf import _names
from otelperf._runtime import setup as _setup
from otelperf._runtime.guard import swallow
from otelperf._sdk import context as _context
from otelperf._sdk import span_context as _ctx
from otelperf._sdk.leaf import LeafSpans, parent_in
from otelperf._sdk.suppression import LEGACY_KEY, SUPPRESS_KEY, instrumentation_suppressed
from otelperf.instrumentation._callsite import CallSites

__all__ = [
    "MAX_CACHE_NAMES",
    "CacheStats",
    "InstrumentedCache",
    "InstrumentedCachedFunction",
    "instrument_cache",
    "stats_for",
]

MAX_CACHE_NAMES = 1000
"""Distinct cache names the metrics keep apart; later ones are counted under ``OVERFLOW_NAME``."""
OVERFLOW_NAME = "_overflow"

_SUPPRESS_KEY, _SUPPRESS_KEY_PLAIN = SUPPRESS_KEY, LEGACY_KEY  # read inline on the lookup path


# --- metrics shared by every cache, in-process or Redis ----------------------------------------------


class CacheStats:
    """The cache metrics of one meter: a request counter by name and result, and a hit-ratio gauge.

    Both report counts kept here since this meter started; the gauge is hits / (hits + misses)
    per cache name, so a dashboard needs no query language to show it. Names are bounded by
    ``MAX_CACHE_NAMES``; lookups of further names are counted under ``OVERFLOW_NAME``.
    """

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # name -> [hits, misses]
        self.overflowed = 0  # lookups recorded under OVERFLOW_NAME
        # Both instruments are observed from the counts kept here: a lookup costs a locked
        # increment instead of a trip through the SDK's aggregation (about a third of a traced hit).
        meter.create_observable_counter(
            _names.METRIC_CACHE_REQUESTS,
            callbacks=[self._observe_requests],
            unit="{request}",
            description="Cache lookups by cache name and result",
        )
        meter.create_observable_gauge(
            _names.METRIC_CACHE_HIT_RATIO,
            callbacks=[self._observe_ratio],
            unit="1",
            description="Fraction of cache lookups that were hits, per cache name, since the process started",
        )

    def record(self, name: str, hits: int, misses: int) -> None:
        """Count ``hits`` and ``misses`` lookups of cache ``name``."""
        with self._lock:
            counts = self._counts.get(name)
            if counts is None:
                if len(self._counts) >= MAX_CACHE_NAMES:
                    self.overflowed += hits + misses
                    name = OVERFLOW_NAME
                    counts = self._counts.setdefault(name, [0, 0])
                else:
                    counts = self._counts[name] = [0, 0]
            counts[0] += hits
            counts[1] += misses

    def ratio(self, name: str) -> float | None:
        with self._lock:
            counts = self._counts.get(name)
            if not counts or not (counts[0] + counts[1]):
                return None
            return counts[0] / (counts[0] + counts[1])

    def _snapshot(self) -> list[tuple[str, int, int]]:
        with self._lock:
            return [(name, hits, misses) for name, (hits, misses) in self._counts.items()]

    def _observe_requests(self, options: CallbackOptions) -> Iterable[Observation]:
        observations = []
        for name, hits, misses in self._snapshot():
            if hits:
                observations.append(Observation(hits, {_names.CACHE_NAME: name, _names.CACHE_RESULT: "hit"}))
            if misses:
                observations.append(
                    Observation(misses, {_names.CACHE_NAME: name, _names.CACHE_RESULT: "miss"})
                )
        return observations

    def _observe_ratio(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(hits / (hits + misses), {_names.CACHE_NAME: name})
            for name, hits, misses in self._snapshot()
            if hits + misses
        ]


_stats_lock = threading.Lock()
_stats_by_meter: weakref.WeakKeyDictionary[Meter, CacheStats] = weakref.WeakKeyDictionary()
_last_stats: tuple[Meter, CacheStats] | None = None  # the hot path almost always asks for the same meter


def stats_for(meter: Meter) -> CacheStats:
    """The one :class:`CacheStats` of ``meter`` (instruments and the gauge callback are registered once)."""
    global _last_stats
    last = _last_stats
    if last is not None and last[0] is meter:
        return last[1]
    with _stats_lock:
        stats = _stats_by_meter.get(meter)
        if stats is None:
            stats = _stats_by_meter[meter] = CacheStats(meter)
        _last_stats = (meter, stats)
    return stats


# --- span helpers ----------------------------------------------------------------------------------


_last_leaf: tuple[Tracer, LeafSpans] | None = None  # one tracer per running otelperf


def _leaf_spans(tracer: Tracer) -> LeafSpans:
    global _last_leaf
    last = _last_leaf
    if last is not None and last[0] is tracer:
        return last[1]
    leaf = LeafSpans(tracer)
    _last_leaf = (tracer, leaf)
    return leaf


_last_sites: tuple[Any, CallSites | None] | None = None  # (runtime, its call sites): one runtime at a time


def _sites_for(runtime: _setup.Runtime) -> CallSites | None:
    """Where this runtime's lookups are made from; None when call sites are off."""
    global _last_sites
    last = _last_sites
    if last is not None and last[0] is runtime:
        return last[1]
    sites = CallSites() if getattr(runtime.settings, "call_sites", True) else None
    _last_sites = (runtime, sites)
    return sites


class _Pending:
    """One traced cache operation: an API span made current (``span``, ``token``), or a leaf to be."""

    __slots__ = ("leaf", "parent", "span", "span_name", "start_ns", "token")

    def __init__(self, span_name: str) -> None:
        self.span_name = span_name
        self.leaf: LeafSpans | None = None
        self.parent: SpanContext | None = None
        self.start_ns = 0
        self.span: Span | None = None
        self.token: object = None


_NO_KEY = object()
# Per process: the hashes group equal keys within this process and mean nothing outside it.
_KEY_SALT = os.urandom(16)


def key_hash(key: Any) -> str:
    """A salted, non-reversible 16-hex-digit hash of a cache key (the key itself never leaves)."""
    try:
        data = key if isinstance(key, bytes) else repr(key).encode("utf-8", "replace")
    except Exception:
        data = str(id(key)).encode()
    return hashlib.blake2b(data, key=_KEY_SALT, digest_size=8).hexdigest()


def _begin(tracer: Tracer, span_name: str, leaf_ok: bool) -> _Pending:
    """Start a cache span. ``leaf_ok``: nothing can run under it, so it may be a leaf span."""
    pending = _Pending(span_name)
    if leaf_ok:
        parent = get_current_span().get_span_context()
        if _ctx.is_valid(parent) and _ctx.trace_flags(parent) & TraceFlags.SAMPLED:
            leaf = _leaf_spans(tracer)
            if leaf.enabled:
                pending.leaf, pending.parent, pending.start_ns = leaf, parent, time.time_ns()
                return pending
    span = pending.span = tracer.start_span(span_name, kind=SpanKind.INTERNAL)
    pending.token = otel_context.attach(trace.set_span_in_context(span))
    return pending


def _finish(
    runtime: _setup.Runtime,
    pending: _Pending,
    *,
    name: str,
    operation: str,
    hit: bool | None,
    exc: BaseException | None,
    key: Any = _NO_KEY,
) -> None:
    """Label and end a cache span; count a lookup when ``hit`` is known.

    A miss carries a salted hash of its key (never the key), so the cache detector can tell a
    miss storm on one hot key from many cold keys.
    """
    span = pending.span
    try:
        try:
            leaf = pending.leaf
            sites = _sites_for(runtime)
            # The stack here is the lookup's: _finish runs inside the instrumented call.
            site = None if sites is None else sites.site(pending.span_name)
            if leaf is not None:
                assert pending.parent is not None
                attributes: dict[str, Any] = {
                    _names.CACHE_NAME: name,
                    _names.CACHE_OPERATION: operation,
                    _names.COMPONENT: _names.COMPONENT_CACHE,
                }
                if hit is not None:
                    attributes[_names.CACHE_HIT] = hit
                    if not hit and key is not _NO_KEY:
                        attributes[_names.CACHE_KEY_HASH] = key_hash(key)
                if exc is not None:
                    attributes[_names.ERROR_TYPE] = type(exc).__qualname__
                if site is not None:
                    attributes.update(site.attributes)
                leaf.emit(
                    pending.span_name,
                    SpanKind.INTERNAL,
                    pending.parent,
                    pending.start_ns,
                    time.time_ns(),
                    attributes,
                    (),
                    exc is not None,
                )
            elif span is not None and span.is_recording():
                span.set_attributes(
                    {
                        _names.CACHE_NAME: name,
                        _names.CACHE_OPERATION: operation,
                        _names.COMPONENT: _names.COMPONENT_CACHE,
                    }
                )
                if site is not None:
                    span.set_attributes(site.attributes)
                if hit is not None:
                    span.set_attribute(_names.CACHE_HIT, hit)
                    if not hit and key is not _NO_KEY:
                        span.set_attribute(_names.CACHE_KEY_HASH, key_hash(key))
                if exc is not None:
                    # No description: the message of an app's exception may carry the data it was about.
                    span.set_attribute(_names.ERROR_TYPE, type(exc).__qualname__)
                    span.set_status(Status(StatusCode.ERROR))
            if hit is not None and runtime.meter is not None:
                stats_for(runtime.meter).record(name, 1 if hit else 0, 0 if hit else 1)
        except Exception as error:  # a generator-based guard costs more than this work
            swallow("cache.finish", error)
    finally:
        if span is not None:
            otel_context.detach(pending.token)  # type: ignore[arg-type]
            span.end()


def _loads_on_miss(cache: Any) -> bool:
    """Whether ``cache[key]`` may run code on a miss (``defaultdict``, a loading ``__missing__``)."""
    missing = getattr(type(cache), "__missing__", None)
    if missing is None:
        return False
    # cachetools' own Cache.__missing__ only raises KeyError.
    return not (
        getattr(missing, "__qualname__", None) == "Cache.__missing__"
        and str(getattr(missing, "__module__", "")).startswith("cachetools")
    )


_current_runtime = _setup.current
_SAMPLED = TraceFlags.SAMPLED
_get_current_context = _context.get_current
_time_ns = time.time_ns


def _active_runtime() -> _setup.Runtime | None:
    runtime = _current_runtime()
    if runtime is None or runtime.tracer is None or instrumentation_suppressed():
        return None
    return runtime


# --- the dict-like cache's lookups under a sampled parent: module functions, as a method looked up
# on a wrapt proxy costs more than the call itself -------------------------------------------------

_Lookup = tuple[str, str, dict[str, Any], dict[str, Any]]  # name, span name, hit and miss attributes


def _leaf_parent(runtime: _setup.Runtime) -> tuple[LeafSpans, SpanContext] | bool:
    """Where a lookup's span goes: ``(leaf spans, parent)`` for a leaf span under a sampled parent
    (the usual case, written in one step), True for a span through the API (a root operation, an
    unsampled parent, a tracer that is not the SDK's), False for none at all (instrumentation
    suppressed). One read of the current context for all of it."""
    current = _get_current_context()
    if current.get(_SUPPRESS_KEY) or current.get(_SUPPRESS_KEY_PLAIN):
        return False
    tracer = runtime.tracer
    last = _last_leaf  # _leaf_spans(), inline
    leaf = last[1] if last is not None and last[0] is tracer else _leaf_spans(tracer)  # type: ignore[arg-type]
    parent = parent_in(current)
    if _ctx.is_valid(parent) and _ctx.trace_flags(parent) & _SAMPLED and leaf.enabled:
        return leaf, parent
    return True


def _lookup_done(  # noqa: PLR0917 - the hot path's own helper, positional for speed
    lookup: _Lookup,
    runtime: _setup.Runtime,
    leaf: LeafSpans,
    parent: SpanContext,
    start_ns: int,
    hit: bool,
    key: Any,
) -> None:
    """Write a finished lookup's leaf span and count it; never raises."""
    try:
        name, span_name, hit_attributes, miss_attributes = lookup
        last_sites = _last_sites  # _sites_for(), inline for the runtime it served last
        sites = last_sites[1] if last_sites is not None and last_sites[0] is runtime else _sites_for(runtime)
        if hit:
            attributes = hit_attributes  # shared by every hit: never changed
            if sites is not None:  # the stack here is the lookup's
                attributes = sites.attributes(span_name, attributes)
        else:
            attributes = dict(miss_attributes)
            attributes[_names.CACHE_KEY_HASH] = key_hash(key)
            site = None if sites is None else sites.site(span_name)
            if site is not None:
                attributes.update(site.attributes)
        leaf.emit(span_name, SpanKind.INTERNAL, parent, start_ns, _time_ns(), attributes)
        meter = runtime.meter
        if meter is not None:
            last = _last_stats  # stats_for(), inline for the meter it served last
            stats = last[1] if last is not None and last[0] is meter else stats_for(meter)
            with stats._lock:  # record(), inline for a name it has counted before
                counts = stats._counts.get(name)
                if counts is not None:
                    counts[0 if hit else 1] += 1
            if counts is None:
                stats.record(name, 1 if hit else 0, 0 if hit else 1)
    except Exception as error:
        swallow("cache.finish", error)


# --- functools.lru_cache / functools.cache -----------------------------------------------------------


# wrapt 2 types its proxies as generics; wrapt 1 (still in the declared range) cannot subscript them.
if TYPE_CHECKING:
    _FunctionWrapper = wrapt.FunctionWrapper[..., Any]
    _ObjectProxy = wrapt.ObjectProxy[Any]
else:
    _FunctionWrapper = wrapt.FunctionWrapper
    _ObjectProxy = wrapt.ObjectProxy


class InstrumentedCachedFunction(_FunctionWrapper):
    """A ``functools.lru_cache``'d function whose calls are ``cache.get <name>`` spans.

    ``cache_info``, ``cache_clear`` and every other attribute still reach the cached function;
    ``__wrapped__`` is the cached function, so ``inspect.unwrap`` still finds the original.

    Hit or miss comes from whether ``cache_info().misses`` moved during the call. The lru_cache
    counters are process-wide, so when another thread misses the same cache at the same moment a
    hit can be reported as a miss (never the other way round): a rare undercount of hits.
    """

    def __init__(self, func: Callable[..., Any], name: str) -> None:
        cache_info = func.cache_info  # type: ignore[attr-defined]
        span_name = f"cache.get {name}"

        def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            runtime = _active_runtime()
            if runtime is None:
                return wrapped(*args, **kwargs)
            assert runtime.tracer is not None
            misses = cache_info().misses
            # Never a leaf: on a miss the loader runs under this span, and its spans are children.
            pending = _begin(runtime.tracer, span_name, False)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                _finish(
                    runtime,
                    pending,
                    name=name,
                    operation="get",
                    hit=cache_info().misses == misses,
                    exc=exc,
                )
                raise
            _finish(runtime, pending, name=name, operation="get", hit=cache_info().misses == misses, exc=None)
            return result

        super().__init__(func, wrapper)
        self._self_otelperf_cache_name = name

    @property
    def otelperf_cache_name(self) -> str:
        name: str = self._self_otelperf_cache_name
        return name


# --- dict-like caches ----------------------------------------------------------------------------------

_MISSING: Any = object()


class InstrumentedCache(_ObjectProxy):
    """A proxy for a dict-like cache whose reads, writes and deletes are spans.

    A ``KeyError`` from ``[key]`` is a miss and is re-raised unchanged. Membership tests,
    iteration, ``len`` and every method not listed here go straight to the wrapped cache, unseen.
    """

    def __init__(self, wrapped: Any, name: str) -> None:
        super().__init__(wrapped)
        self._self_otelperf_cache_name = name
        self._self_get_span = f"cache.get {name}"
        self._self_set_span = f"cache.set {name}"
        self._self_delete_span = f"cache.delete {name}"
        # [key] that may load on a miss keeps its span current for the load's spans.
        self._self_leaf_getitem = not _loads_on_miss(wrapped)
        lookup = {
            _names.CACHE_NAME: name,
            _names.CACHE_OPERATION: "get",
            _names.COMPONENT: _names.COMPONENT_CACHE,
        }
        # A hit's leaf-span attributes are the same every time: one dict, shared, never changed.
        self._self_lookup = (
            name,
            self._self_get_span,
            {**lookup, _names.CACHE_HIT: True},
            {**lookup, _names.CACHE_HIT: False},
        )

    @property
    def otelperf_cache_name(self) -> str:
        name: str = self._self_otelperf_cache_name
        return name

    def _lookup_failed(
        self, runtime: _setup.Runtime, leaf: LeafSpans, parent: SpanContext, start_ns: int, exc: BaseException
    ) -> None:
        pending = _Pending(self._self_get_span)
        pending.leaf, pending.parent, pending.start_ns = leaf, parent, start_ns
        _finish(runtime, pending, name=self._self_otelperf_cache_name, operation="get", hit=None, exc=exc)

    def __getitem__(self, key: Any) -> Any:
        runtime = _setup._runtime  # _setup.current(), without the call
        if runtime is None or runtime.tracer is None or not self._self_leaf_getitem:
            return self._getitem_api(key)
        target = _leaf_parent(runtime)
        if target is False:
            return self.__wrapped__[key]
        if target is True:
            return self._getitem_api(key)
        leaf, parent = target  # type: ignore[misc]
        start_ns = _time_ns()
        try:
            value = self.__wrapped__[key]
        except KeyError:
            _lookup_done(self._self_lookup, runtime, leaf, parent, start_ns, False, key)
            raise
        except BaseException as exc:
            self._lookup_failed(runtime, leaf, parent, start_ns, exc)
            raise
        _lookup_done(self._self_lookup, runtime, leaf, parent, start_ns, True, key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        runtime = _setup._runtime  # _setup.current(), without the call
        if runtime is None or runtime.tracer is None:
            return self.__wrapped__.get(key, default)
        target = _leaf_parent(runtime)
        if target is False:
            return self.__wrapped__.get(key, default)
        if target is True:
            return self._get_api(key, default)
        leaf, parent = target  # type: ignore[misc]
        start_ns = _time_ns()
        try:
            value = self.__wrapped__.get(key, _MISSING)
        except BaseException as exc:
            self._lookup_failed(runtime, leaf, parent, start_ns, exc)
            raise
        hit = value is not _MISSING
        _lookup_done(self._self_lookup, runtime, leaf, parent, start_ns, hit, key)
        return value if hit else default

    # The API path: a span made current while the lookup runs (see the module docstring).
    def _getitem_api(self, key: Any) -> Any:
        runtime = _active_runtime()
        if runtime is None:
            return self.__wrapped__[key]
        assert runtime.tracer is not None
        pending = _begin(runtime.tracer, self._self_get_span, self._self_leaf_getitem)
        try:
            value = self.__wrapped__[key]
        except KeyError:
            _finish(
                runtime,
                pending,
                name=self._self_otelperf_cache_name,
                operation="get",
                hit=False,
                exc=None,
                key=key,
            )
            raise
        except BaseException as exc:
            _finish(runtime, pending, name=self._self_otelperf_cache_name, operation="get", hit=None, exc=exc)
            raise
        _finish(runtime, pending, name=self._self_otelperf_cache_name, operation="get", hit=True, exc=None)
        return value

    def _get_api(self, key: Any, default: Any) -> Any:
        runtime = _active_runtime()
        if runtime is None:
            return self.__wrapped__.get(key, default)
        assert runtime.tracer is not None
        pending = _begin(runtime.tracer, self._self_get_span, True)
        try:
            value = self.__wrapped__.get(key, _MISSING)
        except BaseException as exc:
            _finish(runtime, pending, name=self._self_otelperf_cache_name, operation="get", hit=None, exc=exc)
            raise
        hit = value is not _MISSING
        _finish(
            runtime, pending, name=self._self_otelperf_cache_name, operation="get", hit=hit, exc=None, key=key
        )
        return value if hit else default

    def _traced_write(self, span_name: str, operation: str, method: Callable[..., Any], *args: Any) -> Any:
        runtime = _active_runtime()
        if runtime is None:
            return method(*args)
        assert runtime.tracer is not None
        pending = _begin(runtime.tracer, span_name, True)
        try:
            result = method(*args)
        except BaseException as exc:
            _finish(
                runtime,
                pending,
                name=self._self_otelperf_cache_name,
                operation=operation,
                hit=None,
                exc=exc,
            )
            raise
        _finish(
            runtime, pending, name=self._self_otelperf_cache_name, operation=operation, hit=None, exc=None
        )
        return result

    def __setitem__(self, key: Any, value: Any) -> None:
        self._traced_write(self._self_set_span, "set", self.__wrapped__.__setitem__, key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        # cachetools.cached(lock=...) stores through setdefault.
        return self._traced_write(self._self_set_span, "set", self.__wrapped__.setdefault, key, default)

    def __delitem__(self, key: Any) -> None:
        self._traced_write(self._self_delete_span, "delete", self.__wrapped__.__delitem__, key)

    def pop(self, key: Any, *default: Any) -> Any:
        return self._traced_write(self._self_delete_span, "delete", self.__wrapped__.pop, key, *default)

    def __repr__(self) -> str:
        return f"<InstrumentedCache {self._self_otelperf_cache_name!r} of {self.__wrapped__!r}>"


# --- the public entry point ----------------------------------------------------------------------------


def instrument_cache(cache: Any = None, *, name: str | None = None) -> Any:
    """Return ``cache`` instrumented (see :func:`otelperf.instrument_cache` and the module docstring).

    Without ``cache``, return a decorator. Instrumenting something already instrumented returns it
    unchanged. ``name`` defaults to the function's ``__qualname__`` or the cache's class name.
    """
    if cache is None:
        return functools.partial(instrument_cache, name=name)
    if isinstance(cache, InstrumentedCache | InstrumentedCachedFunction):
        return cache
    if callable(cache) and callable(getattr(cache, "cache_info", None)):
        return InstrumentedCachedFunction(cache, name or getattr(cache, "__qualname__", None) or repr(cache))
    if hasattr(cache, "__getitem__") and hasattr(cache, "__setitem__") and hasattr(cache, "get"):
        return InstrumentedCache(cache, name or type(cache).__name__)
    hint = ""
    if callable(cache) and hasattr(cache, "cache"):
        hint = " (for a cachetools.cached function, instrument its cache: cached(instrument_cache(c)))"
    raise TypeError(
        "instrument_cache() takes a dict-like cache or a function decorated with functools.lru_cache/cache, "
        f"not {type(cache).__name__}{hint}"
    )
