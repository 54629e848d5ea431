"""CacheDetector's miss storms from Redis reads: single-key hashes, multi-key hashes, the Redis hint."""

from __future__ import annotations

from typing import Any

from tests.unit.detectors.corpus_budget import BASE_NS, MS, S, build, server

from otelperf.config import Settings
from otelperf.detectors._api import Finding, TraceView
from otelperf.detectors.cache import CacheDetector


def redis_read(
    command: str,
    *,
    misses: int,
    hits: int = 0,
    key_hash: str | None = None,
    key_hashes: list[str] | None = None,
) -> S:
    attributes: dict[str, Any] = {
        "db.system.name": "redis",
        "db.operation.name": command,
        "otelperf.component": "cache",
        "otelperf.cache.name": "redis",
        "otelperf.cache.hit": misses == 0,
    }
    if command == "MGET":
        attributes["otelperf.cache.hits"] = hits
        attributes["otelperf.cache.misses"] = misses
    if key_hash is not None:
        attributes["otelperf.cache.key_hash"] = key_hash
    if key_hashes is not None:
        attributes["otelperf.cache.key_hashes"] = key_hashes
    return S(command, 5, 8, attributes=attributes)


def request(*children: S, at_ms: float) -> TraceView:
    return build(server("GET /home", 0, 50, *children), at=BASE_NS + round(at_ms * MS))


def storms(det: CacheDetector, views: list[TraceView]) -> list[Finding]:
    return [f for v in views for f in det.analyze(v) if f.detector == "cache_miss_storm"]


def test_redis_get_misses_of_one_key_are_a_storm_with_the_redis_hint() -> None:
    views = [request(redis_read("GET", misses=1, key_hash="aa11"), at_ms=i * 40) for i in range(10)]
    [storm] = storms(CacheDetector(Settings(), None), views)
    assert storm.statement == "cache redis key aa11"
    assert storm.details["key_hash"] == "aa11" and storm.count == 10
    assert storm.hint.startswith("10 requests missed the same Redis key within 1000 ms")
    assert "single-flight: a lock per key with SET <key>:lock NX PX" in storm.hint


def test_each_key_a_multi_key_read_missed_counts() -> None:
    # Every request MGETs a shared key and its own one: the shared key storms, the own ones do not.
    views = [
        request(redis_read("MGET", hits=0, misses=2, key_hashes=["shared", f"own{i}"]), at_ms=i * 40)
        for i in range(10)
    ]
    [storm] = storms(CacheDetector(Settings(), None), views)
    assert storm.details["key_hash"] == "shared"


def test_a_request_counts_once_per_key_and_hashes_are_bounded() -> None:
    # One request reading the same missing key in single and multi reads is one miss of that key.
    det = CacheDetector(Settings(), None, storm_misses=2)
    once = request(
        redis_read("GET", misses=1, key_hash="k"),
        redis_read("MGET", misses=3, key_hashes=["k", "k", "x"]),
        at_ms=0,
    )
    assert storms(det, [once]) == []
    many = [f"h{i}" for i in range(100)]
    det = CacheDetector(Settings(), None, storm_misses=2, max_keys=1000)
    assert storms(det, [request(redis_read("MGET", misses=100, key_hashes=many), at_ms=0)]) == []
    second = storms(det, [request(redis_read("MGET", misses=100, key_hashes=many), at_ms=10)])
    assert len(second) == 32  # only the first 32 hashes of a span are read


def test_misses_without_any_hash_still_group_per_cache() -> None:
    views = [request(redis_read("MGET", misses=1, hits=1), at_ms=i * 40) for i in range(10)]
    [storm] = storms(CacheDetector(Settings(), None), views)
    assert storm.statement == "cache redis (all keys)"
    assert storm.details["keyed"] is False
