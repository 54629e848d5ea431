"""In-process cache instrumentation and the cache detector together, through the real pipeline."""

from __future__ import annotations

import otelperf
from otelperf import _names
from otelperf.testing import capture, stop_capture


def test_misses_carry_a_salted_key_hash_never_the_key() -> None:
    cap = capture(detectors="none")
    try:
        store = otelperf.instrument_cache({"present": 1}, name="users")
        tracer = cap.runtime.tracer
        assert tracer is not None
        with tracer.start_as_current_span("GET /users"):
            store.get("secret-key-1")
            store.get("secret-key-1")
            store.get("secret-key-2")
            store.get("present")
        lookups = [s for s in cap.spans if s.name == "cache.get users"]
        hashes = [(s.attributes or {}).get(_names.CACHE_KEY_HASH) for s in lookups]
        assert hashes[0] == hashes[1] != hashes[2]
        assert hashes[3] is None, "a hit needs no key identity"
        assert all(len(h) == 16 for h in hashes[:3] if h)
        for span in lookups:
            assert "secret-key" not in repr(dict(span.attributes or {}))
    finally:
        stop_capture(cap)


def test_a_miss_storm_on_one_key_is_a_finding() -> None:
    cap = capture(detectors="cache")
    try:
        store = otelperf.instrument_cache({}, name="prices")
        tracer = cap.runtime.tracer
        assert tracer is not None
        for i in range(12):  # twelve requests missing the same hot key within a second
            with tracer.start_as_current_span(f"GET /price/{i}"):
                store.get("price:42")
        storms = [f for f in cap.findings if f.detector == "cache_miss_storm"]
        assert len(storms) == 1
        assert storms[0].severity == "warning"
        assert "prices" in storms[0].statement
    finally:
        stop_capture(cap)
