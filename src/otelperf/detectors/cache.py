"""Cache behaviour across requests: a low hit ratio, and miss storms.

A cache lookup is a span of component "cache" with a boolean ``otelperf.cache.hit`` (the cache
instrumentation and Redis reads set it; the cache's name is ``otelperf.cache.name``, "redis" for
Redis). Multi-key reads (MGET, pipelines) count their ``otelperf.cache.hits``/``misses``.

* **Low hit ratio** (``cache_hit_ratio``): over a sliding window (default 60 s, counted in 60
  buckets so the state per cache is bounded) a cache with at least ``min_lookups`` lookups and a
  hit ratio under ``min_hit_ratio`` is reported, at most once per window per cache.
* **Miss storm** (``cache_miss_storm``): at least ``storm_misses`` requests missing the same key
  within ``storm_window_s`` (default 10 within 1 s), typically concurrent requests all
  recomputing the same expired value. Each request counts once per key: one request missing in
  a loop is a loop (the N+1 detector's business, or a low hit ratio), not a storm.

  Spans never carry cache keys (a key can hold a user id or a token). When a lookup span has
  ``otelperf.cache.key_hash`` -- a *salted* hash of the key (salt per process, so the hash
  cannot be reversed by guessing keys), which the cache instrumentation has to set for this --
  storms are detected per key. Multi-key reads (Redis MGET/HMGET, pipelines) carry the hashes of
  the keys they missed in ``otelperf.cache.key_hashes``; each of those keys counts. Without
  either, misses are grouped per cache name: a burst of requests missing one cache, which can
  also be a cold start over many keys. A storm is reported at most once per
  ``storm_cooldown_s`` per key (or cache). Redis storms get a Redis hint (a lock per key with
  ``SET ... NX PX``).

Time is the spans' own (their start and end timestamps), not the detector's clock, so the
windows mean the same thing when the detector thread runs late. State is bounded: at most
``max_caches`` cache names and ``max_keys`` storm keys (least recently seen evicted); both
overflows are counted.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from otelperf import _names
from otelperf import _spanctx as _ctx
from otelperf.detectors._api import Finding, TraceView, attributes_of, duration_ms, hex_span_id

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelperf.config import Settings

__all__ = ["CacheDetector"]

HIT_RATIO = "cache_hit_ratio"
MISS_STORM = "cache_miss_storm"
UNNAMED_CACHE = "unnamed"
MAX_SPAN_IDS = 50
MAX_KEYS_PER_SPAN = 32
_NO_ATTRIBUTES: Mapping[str, Any] = {}
REDIS_CACHE = "redis"  # the cache name of Redis reads (instrumentation/redis.py)
_BUCKETS = 60


@dataclass
class _Ratio:
    buckets: deque[list[int]] = field(default_factory=deque)  # [bucket index, hits, misses]
    hits: int = 0
    misses: int = 0
    last_reported: int | None = None

    def expire(self, oldest_bucket: int) -> None:
        while self.buckets and self.buckets[0][0] < oldest_bucket:
            _, hits, misses = self.buckets.popleft()
            self.hits -= hits
            self.misses -= misses


@dataclass
class _Storm:
    times: deque[int]
    last_reported: int | None = None


def _lookup(span: ReadableSpan) -> tuple[str, _Entry] | None:
    """The cache name and (span, end time, hits, misses) of a cache lookup span (one of
    ``TraceView.spans_of("cache")``), or None for a cache span that is no lookup (a write, a
    delete) or has not ended."""
    if _ctx.readable_span_fields and type(span) is ReadableSpan:  # the fields, not the properties
        attributes: Mapping[str, Any] = span._attributes or _NO_ATTRIBUTES
        end = span._end_time
    else:
        attributes, end = attributes_of(span), span.end_time
    hit = attributes.get(_names.CACHE_HIT)
    if (hit is not True and hit is not False) or end is None:
        return None
    name = attributes.get(_names.CACHE_NAME)
    if type(name) is not str or not name:
        name = str(name or UNNAMED_CACHE)
    hits, misses = attributes.get(_names.CACHE_HITS), attributes.get(_names.CACHE_MISSES)
    if (hits is not None or misses is not None) and (
        isinstance(hits, int) and isinstance(misses, int) and hits >= 0 and misses >= 0
    ):
        return name, (span, end, hits, misses)  # a multi-key read (MGET, a pipeline)
    return name, ((span, end, 1, 0) if hit else (span, end, 0, 1))


_Entry = tuple[ReadableSpan, int, int, int]  # a lookup span, its end time, hits, misses


def _end_of_entry(entry: _Entry) -> int:
    return entry[1]


def _missed_keys(span: ReadableSpan) -> list[str | None]:
    """The key hashes a missing lookup names; ``[None]`` when it names none."""
    attributes = attributes_of(span)
    keys: list[str | None] = []
    single = attributes.get(_names.CACHE_KEY_HASH)
    if single:
        keys.append(str(single))
    several = attributes.get(_names.CACHE_KEY_HASHES)
    if isinstance(several, list | tuple):
        keys.extend(str(k) for k in several[:MAX_KEYS_PER_SPAN] if k)
    return list(dict.fromkeys(keys)) or [None]


def _fingerprint(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode("utf-8", "replace"), digest_size=8).hexdigest()


def _densest(times: deque[int], window_ns: int) -> int:
    """The most misses inside any interval of ``window_ns`` (they arrive in request-end order)."""
    ordered = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] > window_ns:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class CacheDetector:
    """Finds caches that rarely hit and keys that many requests miss at once."""

    name = "cache"

    def __init__(
        self,
        settings: Settings,
        meter: Meter | None,
        *,
        min_hit_ratio: float = 0.5,
        window_s: float = 60.0,
        min_lookups: int = 20,
        storm_misses: int = 10,
        storm_window_s: float = 1.0,
        storm_cooldown_s: float = 60.0,
        max_caches: int = 1000,
        max_keys: int = 10_000,
    ) -> None:
        del settings, meter  # findings are counted by the pipeline's sink; nothing of our own
        self.min_hit_ratio = min_hit_ratio
        self.min_lookups = min_lookups
        self.storm_misses = storm_misses
        self._window_ns = int(window_s * 1e9)
        self._bucket_ns = max(1, self._window_ns // _BUCKETS)
        self._storm_window_ns = int(storm_window_s * 1e9)
        self._storm_cooldown_ns = int(storm_cooldown_s * 1e9)
        self._max_caches = max_caches
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._ratios: dict[str, _Ratio] = {}
        self._storms: OrderedDict[tuple[str, str | None], _Storm] = OrderedDict()
        self.overflow_caches = 0
        self.evicted_keys = 0

    def analyze(self, trace: TraceView) -> list[Finding]:
        cache_spans = trace.spans_of("cache")
        if not cache_spans:
            return []
        lookups: dict[str, list[_Entry]] = {}
        for span in cache_spans:
            found = _lookup(span)
            if found is not None:
                entries = lookups.get(found[0])
                if entries is None:
                    lookups[found[0]] = [found[1]]
                else:
                    entries.append(found[1])
        if not lookups:
            return []
        findings: list[Finding] = []
        with self._lock:
            for name, entries in lookups.items():
                if len(entries) > 1:
                    entries.sort(key=_end_of_entry)
                finding = self._hit_ratio(trace, name, entries)
                if finding is not None:
                    findings.append(finding)
                for entry in entries:
                    if entry[3]:  # a miss: storms are only looked for then
                        findings.extend(self._miss_storms(trace, name, entries))
                        break
        return findings

    # --- hit ratio ---
    def _hit_ratio(self, trace: TraceView, name: str, entries: list[_Entry]) -> Finding | None:
        ratio = self._ratios.get(name)
        if ratio is None:
            if len(self._ratios) >= self._max_caches:
                self.overflow_caches += 1
                return None
            ratio = self._ratios[name] = _Ratio()
        bucket_ns = self._bucket_ns
        buckets = ratio.buckets
        for _, end, hits, misses in entries:
            # A lookup older than the newest bucket (a request that ended late) joins the newest.
            bucket = end // bucket_ns
            if buckets and buckets[-1][0] >= bucket:
                newest = buckets[-1]
                newest[1] += hits
                newest[2] += misses
            else:
                buckets.append([bucket, hits, misses])
            ratio.hits += hits
            ratio.misses += misses
        now = entries[-1][1]
        oldest = (now - self._window_ns) // bucket_ns + 1
        if ratio.buckets[0][0] < oldest:  # most requests: nothing has expired since the last
            ratio.expire(oldest)
        lookups = ratio.hits + ratio.misses
        if lookups < self.min_lookups or lookups == 0:
            return None
        hit_ratio = ratio.hits / lookups
        if hit_ratio >= self.min_hit_ratio:
            return None
        if ratio.last_reported is not None and now - ratio.last_reported < self._window_ns:
            return None
        ratio.last_reported = now
        spans = [entry[0] for entry in entries]
        window_s = self._window_ns / 1e9
        return Finding(
            detector=HIT_RATIO,
            severity="critical" if hit_ratio < self.min_hit_ratio / 2 else "warning",
            route=trace.route,
            fingerprint=_fingerprint(HIT_RATIO, name),
            statement=f"cache {name}",
            count=lookups,
            duration_ms=sum(duration_ms(s) for s in spans),
            trace_id=trace.trace_id,
            anchor_span_id=hex_span_id(spans[-1]),
            span_ids=tuple(hex_span_id(s) for s in spans[-MAX_SPAN_IDS:]),
            hint=(
                f"cache {name} hit {hit_ratio:.0%} of {lookups} lookups in the last {window_s:g} s "
                f"(threshold {self.min_hit_ratio:.0%}): check its TTL and size (evictions), and that "
                "keys hold no per-request part (a timestamp, a request id)"
            ),
            details={
                "cache": name,
                "hit_ratio": round(hit_ratio, 4),
                "hits": ratio.hits,
                "misses": ratio.misses,
                "window_s": window_s,
                "threshold": self.min_hit_ratio,
            },
        )

    # --- miss storms ---
    def _miss_storms(self, trace: TraceView, name: str, entries: list[_Entry]) -> list[Finding]:
        misses_by_key: dict[str | None, list[ReadableSpan]] = {}
        for span, _, _, misses in entries:
            if misses > 0:
                for key in _missed_keys(span):
                    misses_by_key.setdefault(key, []).append(span)
        findings = []
        for key_hash, spans in misses_by_key.items():
            storm = self._storm_state((name, key_hash))
            first = min(spans, key=lambda s: s.start_time or 0)
            storm.times.append(first.start_time or first.end_time or 0)
            count = _densest(storm.times, self._storm_window_ns)
            if count < self.storm_misses:
                continue
            now = max(storm.times)
            if storm.last_reported is not None and now - storm.last_reported < self._storm_cooldown_ns:
                continue
            storm.last_reported = now
            findings.append(self._storm_finding(trace, name, key_hash, spans, count))
        return findings

    def _storm_state(self, key: tuple[str, str | None]) -> _Storm:
        storm = self._storms.get(key)
        if storm is None:
            if len(self._storms) >= self._max_keys:
                self._storms.popitem(last=False)
                self.evicted_keys += 1
            # Twice the threshold is enough to find a dense window among requests that end out
            # of order, with a small fixed footprint per key.
            storm = self._storms[key] = _Storm(deque(maxlen=2 * self.storm_misses))
        else:
            self._storms.move_to_end(key)
        return storm

    def _storm_finding(
        self, trace: TraceView, name: str, key_hash: str | None, spans: list[ReadableSpan], count: int
    ) -> Finding:
        window_ms = self._storm_window_ns / 1e6
        if key_hash is not None and name == REDIS_CACHE:
            statement = f"cache {name} key {key_hash[:16]}"
            hint = (
                f"{count} requests missed the same Redis key within {window_ms:g} ms: each recomputes "
                "the value; let one request recompute it (single-flight: a lock per key with SET "
                "<key>:lock NX PX, the others wait or serve the stale value) or refresh before expiry "
                "(TTL jitter, stale-while-revalidate)"
            )
        elif key_hash is not None:
            statement = f"cache {name} key {key_hash[:16]}"
            hint = (
                f"{count} requests missed the same key of cache {name} within {window_ms:g} ms: they "
                "recompute one value; coalesce them (single-flight, a lock per key) or "
                "refresh before expiry (stale-while-revalidate, TTL jitter)"
            )
        else:
            statement = f"cache {name} (all keys)"
            hint = (
                f"{count} requests missed cache {name} within {window_ms:g} ms (keys unknown: set "
                f"{_names.CACHE_KEY_HASH} to tell one hot key from a cold start); if one key, "
                "coalesce the recomputation (single-flight) or refresh before expiry"
            )
        return Finding(
            detector=MISS_STORM,
            severity="warning",
            route=trace.route,
            fingerprint=_fingerprint(MISS_STORM, name, key_hash or ""),
            statement=statement,
            count=count,
            duration_ms=sum(duration_ms(s) for s in spans),
            trace_id=trace.trace_id,
            anchor_span_id=hex_span_id(spans[-1]),
            span_ids=tuple(hex_span_id(s) for s in spans[-MAX_SPAN_IDS:]),
            hint=hint,
            details={
                "cache": name,
                "key_hash": key_hash,
                "keyed": key_hash is not None,
                "requests_in_window": count,
                "window_ms": window_ms,
            },
        )
