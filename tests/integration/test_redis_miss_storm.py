"""Redis read misses carry a salted key hash, and many requests missing one key are a miss storm.

Against a real Redis (OTELPERF_TEST_REDIS_URL, fixture ``redis_url`` in conftest).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio
from opentelemetry.sdk.trace import ReadableSpan

from otelperf.detectors._api import Finding
from otelperf.instrumentation.cache import key_hash
from otelperf.testing import Capture

pytestmark = pytest.mark.redis


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def storms(cap: Capture) -> list[Finding]:
    return [f for f in cap.findings if f.detector == "cache_miss_storm"]


def no_key_anywhere(cap: Capture, prefix: str) -> None:
    for span in cap.spans:
        for value in attrs(span).values():
            assert prefix not in str(value), (span.name, value)


def test_read_misses_carry_the_salted_key_hash_never_the_key(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    client.set(prefix + "here", "v", ex=60)
    client.hset(prefix + "h", "f1", "v")
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    otelperf_capture.clear()
    with tracer.start_as_current_span("GET /page"):
        client.get(prefix + "here")
        client.get(prefix + "gone")
        client.hget(prefix + "h", "f2")
        client.mget([prefix + "here", prefix + "m1", prefix + "m2", prefix + "m1"])
        with client.pipeline(transaction=False) as pipe:
            pipe.get(prefix + "here").get(prefix + "p1").execute()
    by_name: dict[str, list[dict[str, Any]]] = {}
    for span in otelperf_capture.spans:
        by_name.setdefault(span.name, []).append(attrs(span))
    hit, miss = by_name["GET"]
    assert hit["otelperf.cache.hit"] is True and "otelperf.cache.key_hash" not in hit
    assert miss["otelperf.cache.hit"] is False
    assert miss["otelperf.cache.key_hash"] == key_hash((prefix + "gone").encode())
    [hget] = by_name["HGET"]
    assert hget["otelperf.cache.key_hash"] == key_hash((prefix + "h").encode() + b"\x00f2")
    [mget] = by_name["MGET"]
    assert (mget["otelperf.cache.hits"], mget["otelperf.cache.misses"]) == (1, 3)
    # Each missing key once, in order; the key found has no hash.
    assert list(mget["otelperf.cache.key_hashes"]) == [
        key_hash((prefix + "m1").encode()),
        key_hash((prefix + "m2").encode()),
    ]
    [pipeline] = by_name["PIPELINE"]
    assert list(pipeline["otelperf.cache.key_hashes"]) == [key_hash((prefix + "p1").encode())]
    no_key_anywhere(otelperf_capture, prefix)


def test_many_requests_missing_one_key_are_a_storm(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    for _ in range(10):  # ten requests within a second, each recomputing the same expired value
        with tracer.start_as_current_span("GET /product/{id}"):
            if client.get(prefix + "product:1") is None:
                client.get(prefix + "price:1")  # another miss in the same request, once each
    [storm_1, storm_2] = sorted(storms(otelperf_capture), key=lambda f: f.statement)
    expected = {key_hash((prefix + k).encode()) for k in ("product:1", "price:1")}
    assert {storm_1.details["key_hash"], storm_2.details["key_hash"]} == expected
    for storm in (storm_1, storm_2):
        assert storm.count == 10
        assert storm.route == "GET /product/{id}"
        assert storm.statement.startswith("cache redis key ")
        assert "SET <key>:lock NX PX" in storm.hint and "single-flight" in storm.hint
    no_key_anywhere(otelperf_capture, prefix)


def test_misses_of_different_keys_are_no_storm(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    for i in range(12):  # cold keys, one per request: before key hashes this read as one storm
        with tracer.start_as_current_span("GET /product/{id}"):
            client.get(f"{prefix}product:{i}")
    assert [s.name for s in otelperf_capture.spans].count("GET") == 12
    assert storms(otelperf_capture) == []


async def test_concurrent_async_requests_and_mget_misses_make_a_storm(
    otelperf_capture: Capture, aclient: redis.asyncio.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None

    async def request(i: int) -> None:
        with tracer.start_as_current_span("GET /home"):
            await aclient.mget([prefix + "banner", f"{prefix}user:{i}"])

    await asyncio.gather(*(request(i) for i in range(10)))
    [storm] = storms(otelperf_capture)
    assert storm.details["key_hash"] == key_hash((prefix + "banner").encode())
    assert storm.count == 10
    no_key_anywhere(otelperf_capture, prefix)
