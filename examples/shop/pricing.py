"""Promotions: the shop's pure-Python pricing rules, and where its CPU goes.

``GET /reports/discounts`` prices every product against every promotion, one rule at a time: no
query, no cache, only Python. It is over its latency budget by design, so the latency-budget
finding has app time to explain, and otelperf's sampling profiler says which function it went to
(``compute_discount``, at the loop's line). The fix it points at: index the promotions by category.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

PRODUCTS = 100
CATEGORIES = 97


@dataclass(frozen=True)
class Promotion:
    category: int
    percent: float
    min_quantity: int


@cache
def promotions() -> tuple[Promotion, ...]:
    """Every promotion (made at first use; deterministic, so every run does the same work)."""
    return tuple(Promotion(i % CATEGORIES, (i * 7919) % 400 / 10.0, i % 13) for i in range(50_000))


def compute_discount(price_cents: int, category: int, quantity: int) -> int:
    """The best promotion's discount for one line: a scan of every promotion (the slow part)."""
    best = 0.0
    for promotion in promotions():
        if promotion.category == category and quantity >= promotion.min_quantity and promotion.percent > best:
            best = promotion.percent
    return round(price_cents * best / 100)


def discount_report(rounds: int) -> dict[str, int]:
    """The discounts of every product at quantities 1..``rounds``."""
    lines = discounted = 0
    for quantity in range(1, rounds + 1):
        for product in range(1, PRODUCTS + 1):
            discount = compute_discount(1000 + product, product % CATEGORIES, quantity)
            lines += 1
            discounted += discount > 0
    return {"lines": lines, "discounted": discounted}
