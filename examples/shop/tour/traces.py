"""Step 5a, where to look: real traces of the run, picked and described from Jaeger.

The shop's own routes are the story: the N+1 list (``GET /orders``) against its eager twin, the
slow search, and a cached price read as a hit and as a miss.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from examples.shop.tour.common import APP_LOG, SERVICE, StepFailed, jaeger, say
from otelperf.backends import Span, SpanKind
from otelperf.backends.jaeger import rfc3339


@dataclass(frozen=True)
class RequestTrace:
    root: Span  # the SERVER span the request started
    spans: tuple[Span, ...]

    @property
    def db(self) -> list[Span]:
        """SQL and Redis spans, in the order they ran."""
        return sorted((s for s in self.spans if "db.system.name" in s.attributes), key=lambda s: s.start_ns)

    @property
    def data(self) -> list[Span]:
        """SQL, Redis and in-process cache spans, in the order they ran."""
        return sorted(
            (
                s
                for s in self.spans
                if "db.system.name" in s.attributes or "otelperf.cache.name" in s.attributes
            ),
            key=lambda s: s.start_ns,
        )

    @property
    def sql(self) -> list[Span]:
        return [s for s in self.db if s.attributes["db.system.name"] != "redis"]

    @property
    def query(self) -> str:
        q = self.root.attributes.get("url.query", "")
        return f"?{q}" if q else ""

    @property
    def ms(self) -> float:
        return self.root.duration_ms


def search(operation: str, start: float, end: float) -> list[RequestTrace]:
    """Every trace of this run whose entry SERVER span is ``operation`` (Jaeger searches newest first)."""
    out = []
    for trace in jaeger.search(SERVICE, operation=operation, start=start, end=end, limit=5000):
        roots = [s for s in trace.roots if s.kind == SpanKind.SERVER and s.name == operation]
        if roots:
            out.append(RequestTrace(roots[0], trace.spans))
    return out


def median_trace(traces: list[RequestTrace]) -> RequestTrace:
    ordered = sorted(traces, key=lambda t: t.ms)
    return ordered[len(ordered) // 2]


def describe_db(trace: RequestTrace) -> str:
    """'1 SELECT orders + 12 SELECT order_items', and the N+1 when one statement repeats."""
    names = Counter(s.name for s in trace.sql)
    if not names:
        return "no SQL"
    parts = " + ".join(f"{n} {name}" for name, n in names.items())
    repeated = Counter(s.attributes.get("db.query.text", s.name) for s in trace.sql).most_common(1)[0][1]
    n_plus_one = f" (N+1: one statement run {repeated} times)" if repeated > 2 else ""
    return f"{parts}{n_plus_one}"


def db_ms(trace: RequestTrace) -> float:
    return sum(s.duration_ms for s in trace.sql)


def describe_cache(trace: RequestTrace) -> str:
    """'GET (miss) -> SELECT products -> SET': the trace's cache and SQL steps in order."""
    steps: list[list[Any]] = []  # [label, repeats]: consecutive repeats folded into one step
    for span in trace.data:
        hit = span.attributes.get("otelperf.cache.hit")
        label = span.name + ("" if hit is None else " (hit)" if hit else " (miss)")
        if steps and steps[-1][0] == label:
            steps[-1][1] += 1
        else:
            steps.append([label, 1])
    return " -> ".join(f"{n} x {label}" if n > 1 else label for label, n in steps) or "no SQL, no Redis"


def summary(trace: RequestTrace) -> str:
    """'GET /orders?customer_id=7: 1 SELECT orders + 12 SELECT order_items (...), 80.1 ms (61.0 in SQL)'"""
    root = trace.root
    path = (
        f"{root.attributes.get('http.request.method', '')} {root.attributes.get('url.path', '')}{trace.query}"
    )
    share = 100 * db_ms(trace) / trace.ms if trace.ms else 0.0
    return f"{path}: {describe_db(trace)}, {trace.ms:.1f} ms ({db_ms(trace):.1f} ms = {share:.0f}% in SQL)"


def show_links(trace_id: str, indent: str = "     ") -> None:
    print(f"{indent}UI  {jaeger.trace_url(trace_id)}\n{indent}API {jaeger.trace_api_url(trace_id)}")


def show_trace(line: str, trace: RequestTrace) -> None:
    print(f"   {line}")
    show_links(trace.root.trace_id)


def cache_hit(trace: RequestTrace) -> bool | None:
    """The first cache lookup's otelperf.cache.hit; None when the trace has no cache span."""
    flags = (s.attributes["otelperf.cache.hit"] for s in trace.data if "otelperf.cache.hit" in s.attributes)
    return next((bool(f) for f in flags), None)


def where_to_look(start: float, end: float) -> tuple[str | None, int]:
    """Prints the traces; returns this run's service.instance.id (None when nothing was found) and
    how many of its traces were read."""
    say()
    print("== Where to look: traces of this run in Jaeger ==")
    print(
        "(This Jaeger is a module build: its UI page is a placeholder, the API is complete; the "
        "docker-compose setup has the full UI.)"
    )
    n1, eager = search("GET /orders", start, end), search("GET /orders-eager", start, end)
    reports = search("GET /reports/search", start, end)
    prices = search("GET /products/{product_id}/price", start, end)
    everything = n1 + eager + reports + prices
    if not everything:
        window = f"{rfc3339(start)} .. {rfc3339(end)}"
        raise StepFailed("Jaeger search", f"no trace of service {SERVICE!r} in {window}", APP_LOG)

    slow = max(n1, key=lambda t: t.ms) if n1 else None
    if slow:
        print(f"\n1. The slowest GET /orders of {len(n1)}: the N+1 list")
        show_trace(summary(slow), slow)
    if eager:
        same = [t for t in eager if slow and t.query == slow.query]
        pick = max(same, key=lambda t: t.ms) if same else median_trace(eager)
        why = "the same customer" if same else "a typical one"
        print(f"\n2. GET /orders-eager, {why}, for comparison (same data, items by selectinload)")
        show_trace(summary(pick), pick)
        if n1:
            a, b = median_trace(n1), median_trace(eager)
            print(
                f"   median of all: GET /orders {a.ms:.1f} ms with {len(a.sql)} SQL statements, "
                f"GET /orders-eager {b.ms:.1f} ms with {len(b.sql)}"
            )
    if reports:
        worst = max(reports, key=lambda t: t.ms)
        print(f"\n3. The slowest GET /reports/search of {len(reports)} (LIKE '%q%' scans every order)")
        show_trace(summary(worst), worst)
        print(f"   median of all: {median_trace(reports).ms:.1f} ms")
    if prices:
        if any(cache_hit(t) is not None for t in prices):
            hits = [t for t in prices if cache_hit(t) is True]
            misses = [t for t in prices if cache_hit(t) is False]
            how = "by the cache span's otelperf.cache.hit"
        else:  # --sqlite: the in-process cache has no spans under `otelperf run`; SQL means a miss
            hits, misses = [t for t in prices if not t.sql], [t for t in prices if t.sql]
            how = "in-process cache, no cache spans: no SQL means a hit"
        ratio = 100 * len(hits) / len(prices)
        print(f"\n4. GET /products/{{product_id}}/price: a typical cache hit vs miss ({how})")
        print(f"   {len(prices)} lookups: {len(hits)} hits, {len(misses)} misses ({ratio:.0f}% hits)")
        for label, group in (("hit: ", hits), ("miss:", misses)):
            if group:
                t = median_trace(group)
                path = t.root.attributes.get("url.path", "")
                show_trace(f"{label} {path}: {describe_cache(t)}, {t.ms:.1f} ms", t)
    instance = str(everything[0].root.resource.get("service.instance.id", "")) or None
    return instance, len(everything)
