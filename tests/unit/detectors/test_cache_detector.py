"""CacheDetector: low hit ratio over a window, and miss storms, across real SDK requests."""

from __future__ import annotations

from typing import Any

from tests.unit.detectors.corpus_budget import BASE_NS, MS, S, build, cache, db, redis_get, server

from otelperf.config import Settings
from otelperf.detectors._api import Finding, TraceView, hex_span_id
from otelperf.detectors.cache import CacheDetector

SECOND = 1000.0  # ms


def detector(**kwargs: Any) -> CacheDetector:
    return CacheDetector(Settings(), None, **kwargs)


def lookups(count: int, hits: int, *, name: str = "sessions", start: float = 0.0) -> list[S]:
    """``count`` lookups 5 ms apart, the first ``hits`` of them hits."""
    return [cache(name, start + i * 5, start + i * 5 + 1, hit=i < hits) for i in range(count)]


def request(*children: S, at_ms: float = 0.0, route: str = "GET /me") -> TraceView:
    return build(server(route, 0, 300, *children), at=BASE_NS + round(at_ms * MS))


def run(det: CacheDetector, *views: TraceView) -> list[Finding]:
    return [f for v in views for f in det.analyze(v)]


# --- hit ratio -------------------------------------------------------------------------------


def test_low_hit_ratio_finding() -> None:
    view = request(*lookups(25, 5))
    [finding] = detector().analyze(view)
    assert finding.detector == "cache_hit_ratio"
    assert finding.statement == "cache sessions"
    assert finding.route == "GET /me"
    assert finding.count == 25
    assert finding.severity == "critical"  # 20% is under half the 50% threshold
    assert finding.details == {
        "cache": "sessions",
        "hit_ratio": 0.2,
        "hits": 5,
        "misses": 20,
        "window_s": 60.0,
        "threshold": 0.5,
    }
    cache_spans = sorted((s for s in view.spans if s.name == "cache get"), key=lambda s: s.end_time or 0)
    assert finding.anchor_span_id == hex_span_id(cache_spans[-1])
    assert set(finding.span_ids) == {hex_span_id(s) for s in cache_spans}
    assert finding.hint.startswith("cache sessions hit 20% of 25 lookups in the last 60 s (threshold 50%)")


def test_cache_findings_name_the_line_most_lookups_ran_from() -> None:
    site = {"code.file.path": "app/me.py", "code.line.number": 17, "code.function.name": "profile"}
    spans = lookups(25, 5)
    for span in spans[:20]:
        span.attributes.update(site)
    [ratio] = detector().analyze(request(*spans))
    assert ratio.details["call_site"] == "app/me.py:17 in profile()"
    assert ratio.details["code.line.number"] == 17
    det, storm = detector(), []
    for i in range(10):
        miss = cache("products", 5, 30, hit=False, key_hash="3f2a9c")
        miss.attributes.update(site)
        storm += det.analyze(request(miss, at_ms=i * 50, route="GET /p"))
    [finding] = storm
    assert finding.detector == "cache_miss_storm"
    assert finding.details["call_site"] == "app/me.py:17 in profile()"


def test_ratio_adds_up_across_requests_and_needs_min_lookups() -> None:
    det = detector()
    # 6 lookups, 2 hits per request: only the 4th request brings the window to 20+ lookups.
    views = [request(*lookups(6, 2), at_ms=i * 100) for i in range(4)]
    assert [len(det.analyze(v)) for v in views] == [0, 0, 0, 1]
    assert detector(min_lookups=6).analyze(views[0])[0].count == 6


def test_healthy_cache_and_the_threshold_is_configurable() -> None:
    view = request(*lookups(25, 20))  # 80% hits
    assert detector().analyze(view) == []
    [finding] = detector(min_hit_ratio=0.9).analyze(view)
    assert (finding.severity, finding.details["hit_ratio"]) == ("warning", 0.8)


def test_reported_at_most_once_per_window() -> None:
    det = detector()
    runs = [run(det, request(*lookups(25, 0), at_ms=at)) for at in (0, 1 * SECOND, 59 * SECOND, 61 * SECOND)]
    assert [len(r) for r in runs] == [1, 0, 0, 1]


def test_old_lookups_leave_the_window() -> None:
    misses = request(*lookups(19, 0))  # under min_lookups on their own
    det = detector()
    assert run(det, misses, request(*lookups(6, 6), at_ms=70 * SECOND)) == []  # the misses expired
    det = detector()
    [finding] = run(det, misses, request(*lookups(6, 6), at_ms=30 * SECOND))  # still inside 60 s
    assert (finding.details["hits"], finding.details["misses"]) == (6, 19)


def test_a_late_request_joins_the_newest_bucket_and_leaves_the_window_with_it() -> None:
    det = detector()
    assert run(det, request(*lookups(10, 10), at_ms=50 * SECOND)) == []
    # Ended before the request above (it ran late): counted with it, in the newest bucket.
    assert run(det, request(*lookups(9, 0), at_ms=10 * SECOND)) == []
    assert run(det, request(*lookups(1, 0), at_ms=105 * SECOND)) == []  # 10 hits, 10 misses
    # 60 s after their bucket both requests have left the window, together: the 10 hits and the
    # 9 late misses are gone, the miss at 105 s is still in.
    [finding] = run(det, request(*lookups(19, 0), at_ms=112 * SECOND))
    assert (finding.details["hits"], finding.details["misses"]) == (0, 20)


def test_hits_alone_report_a_ratio_that_misses_made_low() -> None:
    det = detector()
    assert run(det, request(*lookups(15, 0))) == []  # under min_lookups
    [finding] = run(det, request(*lookups(5, 5), at_ms=SECOND))  # 20 lookups, 25% hits
    assert (finding.details["hits"], finding.details["misses"]) == (5, 15)


def test_multi_key_reads_count_each_key() -> None:
    mget = S(
        "MGET",
        10,
        20,
        attributes={
            "db.system.name": "redis",
            "otelperf.component": "cache",
            "otelperf.cache.name": "redis",
            "otelperf.cache.hit": False,
            "otelperf.cache.hits": 2,
            "otelperf.cache.misses": 8,
        },
    )
    [finding] = detector().analyze(request(mget, mget))
    assert finding.statement == "cache redis"
    assert (finding.count, finding.details["hits"], finding.details["misses"]) == (20, 4, 16)


def test_redis_gets_are_lookups_and_other_spans_are_not() -> None:
    redis_set = S("SET", 0, 1, attributes={"db.system.name": "redis", "otelperf.component": "cache"})
    noise = [redis_set, db("SELECT 1", 0, 1), cache("sessions", 0, 1, hit=True, op="set")]
    view = request(*[redis_get(i, i + 1, hit=i % 4 == 0) for i in range(24)], *noise)
    [finding] = detector().analyze(view)
    assert (finding.statement, finding.count, finding.details["hits"]) == ("cache redis", 24, 6)
    # Alone, the noise is no finding: the SET and the query are not lookups; one "sessions" lookup is too few.
    assert detector().analyze(request(*noise)) == []


def test_each_cache_has_its_own_ratio() -> None:
    view = request(*lookups(25, 25, name="fast"), *lookups(25, 0, name="slow"))
    assert [f.statement for f in detector().analyze(view)] == ["cache slow"]


# --- miss storms -----------------------------------------------------------------------------


def product_miss(at_ms: float, key_hash: str | None = "3f2a9c") -> TraceView:
    return request(cache("products", 5, 30, hit=False, key_hash=key_hash), at_ms=at_ms, route="GET /product")


def test_concurrent_misses_of_one_key_are_a_storm() -> None:
    det = detector()
    views = [product_miss(i * 50) for i in range(12)]
    per_request = [det.analyze(v) for v in views]
    assert [len(f) for f in per_request] == [0] * 9 + [1, 0, 0]
    [finding] = per_request[9]
    assert finding.detector == "cache_miss_storm"
    assert finding.statement == "cache products key 3f2a9c"
    assert finding.route == "GET /product"
    assert finding.count == 10
    assert finding.severity == "warning"
    assert finding.details == {
        "cache": "products",
        "key_hash": "3f2a9c",
        "keyed": True,
        "requests_in_window": 10,
        "window_ms": 1000.0,
    }
    [miss] = [s for s in views[9].spans if s.name == "cache get"]
    assert finding.anchor_span_id == hex_span_id(miss)
    assert finding.trace_id == views[9].trace_id
    assert "single-flight" in finding.hint


def test_storm_threshold_window_and_cooldown() -> None:
    # 9 requests in 1 s: under the threshold.
    assert run(detector(), *[product_miss(i * 100) for i in range(9)]) == []
    # 10 requests, but spread over 1.8 s: no 1 s window holds 10.
    assert run(detector(), *[product_miss(i * 200) for i in range(10)]) == []
    # A storm lasting 3 s is one finding (cooldown 60 s); another 70 s later is a second one.
    det = detector()
    first = run(det, *[product_miss(i * 50) for i in range(60)])
    second = run(det, *[product_miss(70 * SECOND + i * 50) for i in range(10)])
    # (60 lookups without a hit are also a low hit ratio.)
    assert [f.detector for f in first] == ["cache_miss_storm", "cache_hit_ratio"]  # 10th, 20th request
    assert [f.detector for f in second] == ["cache_miss_storm"]
    # Both thresholds are settings.
    assert (
        len(run(detector(storm_misses=3, storm_window_s=0.2), *[product_miss(i * 90) for i in range(3)])) == 1
    )
    assert run(detector(storm_misses=3, storm_window_s=0.2), *[product_miss(i * 150) for i in range(3)]) == []


def test_requests_that_end_out_of_order_still_make_a_storm() -> None:
    views = [product_miss(i * 50) for i in range(10)]
    assert len(run(detector(), *reversed(views))) == 1


def test_different_keys_and_a_loop_in_one_request_are_not_storms() -> None:
    assert run(detector(), *[product_miss(i * 50, key_hash=f"k{i}") for i in range(12)]) == []
    loop = [cache("products", i * 10, i * 10 + 5, hit=False, key_hash="k1") for i in range(15)]
    assert detector().analyze(request(*loop)) == []


def test_hits_do_not_count_toward_a_storm() -> None:
    views = [
        request(cache("products", 5, 30, hit=i % 2 == 0, key_hash="k1"), at_ms=i * 50, route="GET /product")
        for i in range(18)
    ]
    assert run(detector(), *views) == []  # 9 misses


def test_without_key_hashes_misses_group_per_cache() -> None:
    det = detector()
    findings = run(det, *[request(redis_get(2, 10, hit=False), at_ms=i * 20) for i in range(10)])
    [finding] = findings
    assert finding.statement == "cache redis (all keys)"
    assert finding.details["keyed"] is False
    assert "otelperf.cache.key_hash" in finding.hint


def test_state_is_bounded() -> None:
    det = detector(max_keys=5, max_caches=2)
    run(det, *[product_miss(i, key_hash=f"k{i}") for i in range(8)])
    assert det.evicted_keys == 3
    run(det, request(*lookups(1, 0, name="a"), *lookups(1, 0, name="b")))
    assert det.overflow_caches == 1  # "products" and "a" took the two places
