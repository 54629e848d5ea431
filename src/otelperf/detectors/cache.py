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
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from otelperf import _names
from otelperf._sdk import readable as _readable
from otelperf.detectors._api import Finding, TraceView, attributes_of, duration_ms, hex_span_id
from otelperf.detectors._callsites import common_call_site

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


class _Ratio:
    """One cache's lookups over the window, in buckets of [bucket index, hits, misses]."""

    __slots__ = ("buckets", "hits", "last_reported", "misses", "newest")

    def __init__(self) -> None:
        self.newest = [-1, 0, 0]  # the last bucket (a placeholder before the first lookup)
        self.buckets: deque[list[int]] = deque((self.newest,))
        self.hits = 0
        self.misses = 0
        self.last_reported: int | None = None

    def expire(self, oldest_bucket: int) -> None:
        # The newest bucket holds the lookup that asks, so it is never old enough to leave.
        buckets = self.buckets
        while len(buckets) > 1 and buckets[0][0] < oldest_bucket:
            _, hits, misses = buckets.popleft()
            self.hits -= hits
            self.misses -= misses


@dataclass
class _Storm:
    times: deque[int]
    last_reported: int | None = None


_Entry = tuple[ReadableSpan, int, int, int]  # a lookup span, its end time, hits, misses


def _end_of_entry(entry: _Entry) -> int:
    return entry[1]


_Tally = list[Any]  # one request's lookups of one cache: [hits, misses, last end time, entries]
_HITS, _MISSES, _LAST_END, _ENTRIES = range(4)
_ONE_HIT = (1, 0)
_ONE_MISS = (0, 1)
# Attribute names read for every lookup: module names, one load each.
_HIT, _NAME = _names.CACHE_HIT, _names.CACHE_NAME
_HITS_KEY, _MISSES_KEY = _names.CACHE_HITS, _names.CACHE_MISSES


def _counts(attributes: Mapping[str, Any], hit: bool) -> tuple[int, int]:
    """(hits, misses) of one lookup: a multi-key read (MGET, a pipeline) counts its keys."""
    hits, misses = attributes.get(_HITS_KEY), attributes.get(_MISSES_KEY)
    if (hits is not None or misses is not None) and (
        isinstance(hits, int) and isinstance(misses, int) and hits >= 0 and misses >= 0
    ):
        return hits, misses
    return _ONE_HIT if hit else _ONE_MISS


def _tally(cache_spans: Sequence[ReadableSpan]) -> dict[str, _Tally]:
    """The lookups among ``TraceView.spans_of("cache")`` by cache name. A cache span that is no
    lookup (a write, a delete: no boolean ``otelperf.cache.hit``) or has not ended is left out."""
    tallies: dict[str, _Tally] = {}
    fields = _readable.FIELDS_HOLD
    for span in cache_spans:
        if fields and type(span) is ReadableSpan:  # the fields, not the properties
            attributes: Mapping[str, Any]
            attributes, end = _readable.attributes_and_end(span)
            attributes = attributes or _NO_ATTRIBUTES
        else:
            attributes, end = attributes_of(span), span.end_time
        hit = attributes.get(_HIT)
        if (hit is not True and hit is not False) or end is None:
            continue
        name = attributes.get(_NAME)
        if type(name) is not str or not name:
            name = str(name or UNNAMED_CACHE)
        if _HITS_KEY in attributes or _MISSES_KEY in attributes:
            hits, misses = _counts(attributes, hit)
        else:
            hits, misses = _ONE_HIT if hit else _ONE_MISS
        tally = tallies.get(name)
        if tally is None:  # a list, not an object: built for every request that reads a cache
            tallies[name] = [hits, misses, end, [(span, end, hits, misses)]]
        else:
            tally[_HITS] += hits
            tally[_MISSES] += misses
            if end > tally[_LAST_END]:  # noqa: PLR1730 - max() is a call
                tally[_LAST_END] = end
            tally[_ENTRIES].append((span, end, hits, misses))
    return tallies


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
        self._ratios: dict[str, _Ratio] = {}
        self._storms: OrderedDict[tuple[str, str | None], _Storm] = OrderedDict()
        self.overflow_caches = 0
        self.evicted_keys = 0

    def analyze(self, trace: TraceView) -> list[Finding]:
        cache_spans = trace.spans_of("cache")
        if not cache_spans:
            return []
        tallies = _tally(cache_spans)
        if not tallies:
            return []
        findings: list[Finding] = []
        # Detectors run on one thread at a time (see Detector): this state takes no lock.
        for name, tally in tallies.items():
            hits, misses, now, entries = tally
            ratio = self._ratios.get(name)
            if ratio is None:
                ratio = self._new_ratio(name)
            # One request's lookups of a cache are counted in the bucket of its last one; a
            # request that ended after a newer bucket began (it ran late) joins the newest.
            if ratio is not None:
                bucket = now // self._bucket_ns
                newest = ratio.newest
                if newest[0] >= bucket:
                    newest[1] += hits
                    newest[2] += misses
                else:  # once per bucket: what left the window goes
                    ratio.newest = newest = [bucket, hits, misses]
                    ratio.buckets.append(newest)
                    ratio.expire((now - self._window_ns) // self._bucket_ns + 1)
                ratio.hits += hits
                ratio.misses += misses
                lookups = ratio.hits + ratio.misses
                # Most requests: a ratio at or over the threshold, or too few lookups yet.
                if lookups >= self.min_lookups and ratio.hits < self.min_hit_ratio * lookups:
                    if len(entries) > 1:
                        entries.sort(key=_end_of_entry)
                    finding = self._hit_ratio(trace, name, ratio, now, entries)
                    if finding is not None:
                        findings.append(finding)
            if misses:  # storms are only looked for then
                if len(entries) > 1:
                    entries.sort(key=_end_of_entry)
                findings.extend(self._miss_storms(trace, name, entries))
        return findings

    def _new_ratio(self, name: str) -> _Ratio | None:
        if len(self._ratios) >= self._max_caches:
            self.overflow_caches += 1
            return None
        ratio = self._ratios[name] = _Ratio()
        return ratio

    # --- hit ratio ---
    def _hit_ratio(
        self, trace: TraceView, name: str, ratio: _Ratio, now: int, entries: list[_Entry]
    ) -> Finding | None:
        """The low-hit-ratio finding, when the ratio over the window (expired up to ``now``) is low
        and was not reported within the window; ``entries`` in end order."""
        ratio.expire((now - self._window_ns) // self._bucket_ns + 1)
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
                **_where(spans),
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
                **_where(spans),
            },
        )


def _where(spans: list[ReadableSpan]) -> dict[str, Any]:
    """The lookups' call site (``call_site`` and the ``code.*`` keys; {} when they carry none): the
    line most of them ran from."""
    site = common_call_site(spans)
    return site.details() if site is not None else {}
