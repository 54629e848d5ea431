"""In-process cache instrumentation: lru_cache'd functions, dict-like caches, cachetools, metrics."""

from __future__ import annotations

import collections
import functools
import inspect
import sys
import threading
from typing import Any

import cachetools
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

import otelperf
from otelperf.instrumentation import cache as cache_module
from otelperf.instrumentation.cache import CacheStats, InstrumentedCache, instrument_cache, stats_for
from otelperf.testing import Capture, capture, stop_capture


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def requests(cap: Capture, name: str) -> dict[str, int]:
    return {
        p.attributes["otelperf.cache.result"]: p.value
        for p in cap.metric_points("otelperf.cache.requests")
        if p.attributes["otelperf.cache.name"] == name
    }


def hit_ratio(cap: Capture, name: str) -> float | None:
    values = [
        p.value
        for p in cap.metric_points("otelperf.cache.hit_ratio")
        if p.attributes["otelperf.cache.name"] == name
    ]
    assert len(values) <= 1
    return values[0] if values else None


# --- functools.lru_cache ------------------------------------------------------------------------


def test_lru_cache_calls_are_get_spans_with_hit(otelperf_capture: Capture) -> None:
    @functools.lru_cache(maxsize=16)
    def square(x: int) -> int:
        return x * x

    traced = instrument_cache(square)
    line = sys._getframe().f_lineno + 1  # the lookups' call site
    assert [traced(3), traced(3), traced(4)] == [9, 9, 16]

    spans = otelperf_capture.spans
    name = square.__qualname__
    assert [s.name for s in spans] == [f"cache.get {name}"] * 3
    assert [attrs(s)["otelperf.cache.hit"] for s in spans] == [False, True, False]
    assert attrs(spans[0]) == {
        "otelperf.cache.name": name,
        "otelperf.cache.operation": "get",
        "otelperf.cache.hit": False,
        "otelperf.component": "cache",
        "code.file.path": __file__,
        "code.function.name": "test_lru_cache_calls_are_get_spans_with_hit",
        "code.line.number": line,
    }
    assert spans[0].kind is SpanKind.INTERNAL
    assert requests(otelperf_capture, name) == {"hit": 1, "miss": 2}
    assert hit_ratio(otelperf_capture, name) == pytest.approx(1 / 3)


def test_lru_cache_wrapper_keeps_the_functools_api(otelperf_capture: Capture) -> None:
    def load(x: int) -> int:
        return x + 1

    cached = functools.lru_cache(maxsize=None)(load)
    traced = otelperf.instrument_cache(cached, name="load")
    traced(1)
    traced(1)
    assert traced.cache_info().hits == 1
    traced.cache_clear()
    assert traced.cache_info().currsize == 0
    assert traced.__wrapped__ is cached
    assert inspect.unwrap(traced) is load
    assert traced.__name__ == "load"
    assert instrument_cache(traced) is traced  # already instrumented: unchanged


def test_decorator_form_and_methods(otelperf_capture: Capture) -> None:
    class Prices:
        calls = 0

        @instrument_cache(name="price")
        @functools.lru_cache(maxsize=8)  # noqa: B019 - methods are what this test is about
        def price(self, sku: str) -> int:
            Prices.calls += 1
            return len(sku)

    shop = Prices()
    assert [shop.price("abc"), shop.price("abc"), Prices().price("abc")] == [3, 3, 3]
    assert Prices.calls == 2  # a new instance is a new key
    assert [attrs(s)["otelperf.cache.hit"] for s in otelperf_capture.spans_named("cache.get price")] == [
        False,
        True,
        False,
    ]
    assert Prices.price.cache_info().misses == 2


def test_a_miss_span_covers_the_load(otelperf_capture: Capture) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None

    @instrument_cache(name="user")
    @functools.cache
    def load_user(user_id: int) -> str:
        with tracer.start_as_current_span("SELECT users"):
            return f"user{user_id}"

    with tracer.start_as_current_span("handler"):
        load_user(1)

    get = otelperf_capture.spans_named("cache.get user")[0]
    (handler,) = otelperf_capture.spans_named("handler")
    assert otelperf_capture.children_of(get)[0].name == "SELECT users"
    assert get.parent is not None and get.parent.span_id == handler.context.span_id


def test_loader_exception_propagates_unchanged(otelperf_capture: Capture) -> None:
    error = LookupError("user 7 not found")

    @instrument_cache(name="failing")
    @functools.lru_cache
    def load(x: int) -> int:
        raise error

    with pytest.raises(LookupError) as raised:
        load(7)

    assert raised.value is error
    (span,) = otelperf_capture.spans
    assert span.status.status_code is StatusCode.ERROR
    assert not span.status.description  # the app's message can carry the data it was about
    assert (attrs(span)["error.type"], attrs(span)["otelperf.cache.hit"]) == ("LookupError", False)


# --- dict-like caches -----------------------------------------------------------------------------


def test_dict_cache_get_set_delete(otelperf_capture: Capture) -> None:
    store = instrument_cache({}, name="sessions")
    store["a"] = 1
    assert store.get("a") == 1
    assert store.get("b", "default") == "default"
    assert store["a"] == 1
    with pytest.raises(KeyError) as raised:
        store["missing"]
    assert raised.value.args == ("missing",)
    assert store.pop("a") == 1
    assert store.pop("a", None) is None
    store["c"] = 3
    del store["c"]
    # Not spans: membership, size, iteration.
    assert "c" not in store and len(store) == 0 and list(store) == []

    seen = [
        (s.name, attrs(s)["otelperf.cache.operation"], attrs(s).get("otelperf.cache.hit"))
        for s in otelperf_capture.spans
    ]
    assert seen == [
        ("cache.set sessions", "set", None),
        ("cache.get sessions", "get", True),
        ("cache.get sessions", "get", False),
        ("cache.get sessions", "get", True),
        ("cache.get sessions", "get", False),
        ("cache.delete sessions", "delete", None),
        ("cache.delete sessions", "delete", None),
        ("cache.set sessions", "set", None),
        ("cache.delete sessions", "delete", None),
    ]
    assert all(s.status.status_code is StatusCode.UNSET for s in otelperf_capture.spans)  # a miss is no error
    assert requests(otelperf_capture, "sessions") == {"hit": 2, "miss": 2}
    assert hit_ratio(otelperf_capture, "sessions") == pytest.approx(0.5)


def test_proxy_still_is_the_wrapped_type() -> None:
    ttl = cachetools.TTLCache(maxsize=10, ttl=60)
    proxy = instrument_cache(ttl)
    assert isinstance(proxy, cachetools.TTLCache)
    assert isinstance(proxy, cachetools.Cache)
    assert isinstance(proxy, InstrumentedCache)
    assert proxy.maxsize == 10
    assert proxy.otelperf_cache_name == "TTLCache"
    assert isinstance(instrument_cache({}), dict)


def test_cachetools_cached_over_an_instrumented_ttl_cache(otelperf_capture: Capture) -> None:
    now = [0.0]
    ttl = instrument_cache(cachetools.TTLCache(maxsize=10, ttl=60, timer=lambda: now[0]), name="rates")
    calls: list[str] = []

    @cachetools.cached(ttl)
    def rate(currency: str) -> float:
        calls.append(currency)
        return 1.5

    assert [rate("EUR"), rate("EUR")] == [1.5, 1.5]
    now[0] = 61.0  # expired
    assert rate("EUR") == 1.5

    assert calls == ["EUR", "EUR"]
    seen = [(s.name, attrs(s).get("otelperf.cache.hit")) for s in otelperf_capture.spans]
    assert seen == [
        ("cache.get rates", False),
        ("cache.set rates", None),
        ("cache.get rates", True),
        ("cache.get rates", False),
        ("cache.set rates", None),
    ]
    assert requests(otelperf_capture, "rates") == {"hit": 1, "miss": 2}


def test_cachetools_cached_with_a_lock_stores_through_setdefault(otelperf_capture: Capture) -> None:
    cache = instrument_cache(cachetools.LRUCache(maxsize=4), name="locked")

    @cachetools.cached(cache, lock=threading.Lock())
    def double(x: int) -> int:
        return 2 * x

    assert [double(2), double(2)] == [4, 4]
    assert [s.name for s in otelperf_capture.spans] == [
        "cache.get locked",
        "cache.set locked",
        "cache.get locked",
    ]


def test_write_error_is_marked_and_propagates(otelperf_capture: Capture) -> None:
    # cachetools refuses a value larger than the whole cache with ValueError.
    cache = instrument_cache(cachetools.LRUCache(maxsize=1, getsizeof=len), name="tiny")
    with pytest.raises(ValueError, match="too large"):
        cache["k"] = "way too large"
    (span,) = otelperf_capture.spans
    assert (span.status.status_code, attrs(span)["error.type"]) == (StatusCode.ERROR, "ValueError")


# --- when otelperf is not running ---------------------------------------------------------------


def test_wrapped_before_init_is_traced_once_otelperf_runs() -> None:
    store = instrument_cache({}, name="early")

    @instrument_cache(name="early-fn")
    @functools.lru_cache
    def f(x: int) -> int:
        return x

    store["k"] = 1  # nothing running: plain pass-through
    assert (store["k"], f(1)) == (1, 1)

    cap = capture()
    try:
        assert (store["k"], f(1)) == (1, 1)
        assert [s.name for s in cap.spans] == ["cache.get early", "cache.get early-fn"]
        assert requests(cap, "early") == {"hit": 1}
    finally:
        stop_capture(cap)

    assert (store.get("k"), f(2)) == (1, 2)
    assert len(cap.spans) == 2


def test_disabled_otelperf_passes_through() -> None:
    cap = capture(disabled=True)
    try:
        assert cap.runtime.tracer is None
        store = instrument_cache({"k": 1}, name="off")
        assert (store["k"], store.get("x", 0)) == (1, 0)
        with pytest.raises(KeyError):
            store["x"]
    finally:
        stop_capture(cap)


def test_suppressed_instrumentation_makes_no_span(otelperf_capture: Capture) -> None:
    store = instrument_cache({"k": 1}, name="quiet")
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        assert store["k"] == 1
    finally:
        otel_context.detach(token)
    assert store["k"] == 1
    assert len(otelperf_capture.spans) == 1


def test_things_that_are_not_caches_are_refused() -> None:
    with pytest.raises(TypeError, match="lru_cache"):
        instrument_cache(len)
    with pytest.raises(TypeError, match="instrument its cache"):
        instrument_cache(cachetools.cached(cachetools.LRUCache(4))(len))
    with pytest.raises(TypeError):
        instrument_cache(42)


# --- the shared metrics -------------------------------------------------------------------------


def _meter_and_reader() -> tuple[Any, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    return provider.get_meter("test"), reader


def _points(reader: InMemoryMetricReader, metric: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == metric
        for p in m.data.data_points
    ]


def test_stats_are_one_per_meter() -> None:
    meter, reader = _meter_and_reader()
    assert stats_for(meter) is stats_for(meter)
    stats_for(meter).record("a", 3, 1)
    (gauge,) = _points(reader, "otelperf.cache.hit_ratio")  # one callback, not one per caller
    assert (dict(gauge.attributes), gauge.value) == ({"otelperf.cache.name": "a"}, 0.75)


def test_cache_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "MAX_CACHE_NAMES", 2)
    meter, reader = _meter_and_reader()
    stats = CacheStats(meter)
    for name in ("a", "b", "c", "d"):
        stats.record(name, 1, 0)

    names = sorted(p.attributes["otelperf.cache.name"] for p in _points(reader, "otelperf.cache.requests"))
    assert names == ["_overflow", "a", "b"]
    assert stats.overflowed == 2
    assert stats.ratio("_overflow") == 1.0
    assert stats.ratio("c") is None


# --- under a parent span (the leaf-span path) and at the root (the API path) --------------------------


def _dict_cache_workout(store: Any, tiny: Any) -> None:
    store["a"] = 1
    assert store.get("a") == 1
    assert store.get("b", "default") == "default"
    assert store["a"] == 1
    with pytest.raises(KeyError):
        store["missing"]
    assert store.setdefault("s", 2) == 2
    assert store.pop("a") == 1
    assert store.pop("a", None) is None
    store["c"] = 3
    del store["c"]
    with pytest.raises(ValueError, match="too large"):
        tiny["k"] = "way too large"


def test_dict_cache_spans_under_a_parent_are_the_spans_at_the_root(otelperf_capture: Capture) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    store = instrument_cache(cachetools.LRUCache(maxsize=8), name="sessions")
    tiny = instrument_cache(cachetools.LRUCache(maxsize=1, getsizeof=len), name="tiny")

    def seen(span: ReadableSpan) -> tuple[Any, ...]:
        return (
            span.name,
            span.kind,
            attrs(span),
            span.status.status_code,
            span.status.description,
            span.events,
        )

    _dict_cache_workout(store, tiny)
    at_root = otelperf_capture.spans
    otelperf_capture.clear()
    with tracer.start_as_current_span("handler") as handler:
        _dict_cache_workout(store, tiny)
    under_parent = [s for s in otelperf_capture.spans if s.name != "handler"]

    assert [seen(s) for s in under_parent] == [seen(s) for s in at_root]
    assert len(under_parent) == 11
    assert under_parent[-1].status.status_code is StatusCode.ERROR
    assert attrs(under_parent[-1])["error.type"] == "ValueError"
    handler_ctx = handler.get_span_context()
    for span in under_parent:
        assert span.parent is not None and span.parent.span_id == handler_ctx.span_id
        assert span.context.trace_id == handler_ctx.trace_id
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time
    assert len({s.context.span_id for s in under_parent}) == 11
    assert requests(otelperf_capture, "sessions") == {"hit": 4, "miss": 4}  # both rounds


def test_a_loading_missing_keeps_the_load_under_the_get_span(otelperf_capture: Capture) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None

    def load() -> int:
        with tracer.start_as_current_span("SELECT defaults"):
            return 0

    class Loading(cachetools.LRUCache[str, int]):
        def __missing__(self, key: str) -> int:
            with tracer.start_as_current_span("SELECT rate"):
                return 5

    defaults = instrument_cache(collections.defaultdict(load), name="defaults")
    loading = instrument_cache(Loading(maxsize=4), name="loading")
    with tracer.start_as_current_span("handler") as handler:
        assert (defaults["x"], loading["y"]) == (0, 5)

    for cache_name, load_name in (("defaults", "SELECT defaults"), ("loading", "SELECT rate")):
        [get] = otelperf_capture.spans_named(f"cache.get {cache_name}")
        assert [s.name for s in otelperf_capture.children_of(get)] == [load_name]
        assert get.parent is not None and get.parent.span_id == handler.get_span_context().span_id
        assert attrs(get)["otelperf.cache.hit"] is True


def test_cached_function_hit_under_a_parent(otelperf_capture: Capture) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None

    @instrument_cache(name="fn")
    @functools.lru_cache
    def f(x: int) -> int:
        return x

    with tracer.start_as_current_span("handler") as handler:
        assert (f(1), f(1)) == (1, 1)
    miss, hit = otelperf_capture.spans_named("cache.get fn")
    assert [attrs(miss)["otelperf.cache.hit"], attrs(hit)["otelperf.cache.hit"]] == [False, True]
    assert all(
        s.parent is not None and s.parent.span_id == handler.get_span_context().span_id for s in (miss, hit)
    )


def test_unsampled_parent_makes_no_span_and_still_counts(otelperf_capture: Capture) -> None:
    store = instrument_cache({"k": 1}, name="unsampled")
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        assert (store["k"], store.get("x")) == (1, None)
        store["y"] = 2
    finally:
        otel_context.detach(token)
    assert otelperf_capture.spans == []
    assert requests(otelperf_capture, "unsampled") == {"hit": 1, "miss": 1}


class _BrokenReads(dict[str, Any]):
    """A cache whose reads fail with something other than a miss (a backend error)."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("backend down")

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("backend down")


@pytest.mark.fast_paths  # shares one attributes mapping: the leaf path
def test_failing_reads_under_a_parent_match_the_root_and_hits_share_their_attributes(
    otelperf_capture: Capture,
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    broken = instrument_cache(_BrokenReads(), name="broken")

    this_test = sys._getframe().f_code.co_name
    line = sys._getframe().f_lineno + 3  # the lookups' call site: the lambdas

    def reads() -> None:
        for read in (lambda: broken["k"], lambda: broken.get("k")):
            with pytest.raises(RuntimeError, match="backend down"):
                read()

    reads()
    at_root = [(s.name, attrs(s), s.status.status_code) for s in otelperf_capture.spans]
    otelperf_capture.clear()
    with tracer.start_as_current_span("handler"):
        reads()
    under_parent = [
        (s.name, attrs(s), s.status.status_code) for s in otelperf_capture.spans if s.name != "handler"
    ]
    assert under_parent == at_root
    failed = {
        "otelperf.cache.name": "broken",
        "otelperf.cache.operation": "get",
        "otelperf.component": "cache",
        "error.type": "RuntimeError",
        "code.file.path": __file__,
        "code.function.name": f"{this_test}.<locals>.reads.<locals>.<lambda>",
        "code.line.number": line,
    }
    assert at_root == [("cache.get broken", failed, StatusCode.ERROR)] * 2
    assert requests(otelperf_capture, "broken") == {}  # neither a hit nor a miss

    store = instrument_cache({"a": 1}, name="shared")
    otelperf_capture.clear()
    with tracer.start_as_current_span("handler"):
        hits_line = sys._getframe().f_lineno + 1
        assert store["a"] == store.get("a") == 1
        assert store.get("zz") is None
    hit1, hit2, miss = [s for s in otelperf_capture.spans if s.name == "cache.get shared"]
    assert hit1._attributes is hit2._attributes  # one dict for every hit, never changed
    assert attrs(hit1) == {
        "otelperf.cache.name": "shared",
        "otelperf.cache.operation": "get",
        "otelperf.component": "cache",
        "otelperf.cache.hit": True,
        "code.file.path": __file__,
        "code.function.name": this_test,
        "code.line.number": hits_line,
    }
    assert attrs(miss)["otelperf.cache.hit"] is False and "otelperf.cache.key_hash" in attrs(miss)
