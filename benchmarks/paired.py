"""Wall clock as the median of per-round ratios: what overhead.py (and testsuite.py) report.

On a shared 2-core machine the absolute req/s of an arm moves by +-30% from one round to the next,
with whatever else the machine is doing. Arms run back to back within a round see about the same
machine, so the ratio of two arms *in the same round* is far steadier than the ratio of their
medians over rounds. This module pairs each arm with its baseline round by round and takes the
median of those ratios, and of the wall-clock time per request they differ by.

For a 1-worker server kept busy by the load generator, ``1 / req/s`` is the wall time the server
needs per request. ``added wall µs`` = ``1e6 / arm_rps - 1e6 / base_rps`` (per round, median) is
then the wall-clock cost of instrumentation per request; set beside the added *CPU* µs per request
(the server's utime+stime, all threads), it tells whether the cost is work (the two agree) or
waiting: GIL hand-offs, thread wake-ups, the server idling between requests (wall > CPU).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Each instrumented arm against its own uninstrumented baseline (the plain arm has other packages).
WALL_BASELINE = {"plain": "bare-plain", "otelperf": "bare", "otelperf-prod": "bare"}


class RoundResult(Protocol):
    arm: str
    round: int
    rps: dict[str, float]
    cpu_us: dict[str, float]


@dataclass
class Paired:
    arm: str
    base: str
    rounds: int
    ratio: float  # median over rounds of arm req/s / base req/s (same round)
    ratio_min: float
    ratio_max: float
    added_wall_us: float  # median over rounds of 1e6/arm_rps - 1e6/base_rps
    added_cpu_us: float | None  # median over rounds of arm CPU µs/request - base CPU µs/request


def pair(
    results: Iterable[RoundResult], arm: str, base: str, route: str
) -> list[tuple[RoundResult, RoundResult]]:
    """(arm, base) results of the same round, for the rounds in which both measured ``route``."""
    by_round: dict[tuple[str, int], RoundResult] = {(r.arm, r.round): r for r in results}
    out = []
    for (name, rnd), r in sorted(by_round.items(), key=lambda kv: kv[0][1]):
        b = by_round.get((base, rnd))
        if name == arm and b is not None and r.rps.get(route) and b.rps.get(route):
            out.append((r, b))
    return out


def paired(results: Sequence[RoundResult], arm: str, base: str, route: str) -> Paired | None:
    pairs = pair(results, arm, base, route)
    if not pairs:
        return None
    ratios = [a.rps[route] / b.rps[route] for a, b in pairs]
    wall = [1e6 / a.rps[route] - 1e6 / b.rps[route] for a, b in pairs]
    cpu = [a.cpu_us[route] - b.cpu_us[route] for a, b in pairs if route in a.cpu_us and route in b.cpu_us]
    return Paired(
        arm,
        base,
        len(pairs),
        statistics.median(ratios),
        min(ratios),
        max(ratios),
        statistics.median(wall),
        statistics.median(cpu) if cpu else None,
    )


def summarize_wall(
    results: Sequence[RoundResult], arms: list[str], routes: Iterable[str]
) -> dict[str, list[Paired]]:
    """Per route, each instrumented arm against its baseline, and plain against ``bare`` too."""
    table: dict[str, list[Paired]] = {}
    for route in routes:
        rows = []
        for arm, base in WALL_BASELINE.items():
            for b in dict.fromkeys((base, "bare")):
                if arm in arms and b in arms:
                    p = paired(results, arm, b, route)
                    if p is not None:
                        rows.append(p)
        table[route] = rows
    return table


def print_wall(table: Mapping[str, list[Paired]]) -> None:
    print()
    print("wall clock, paired by round (each arm against its baseline in the same round), medians:")
    print("  ratio = arm req/s / base req/s; added wall = 1e6/arm_rps - 1e6/base_rps per request;")
    print("  added CPU = arm - base server CPU per request (all threads); wall > CPU: time spent waiting")
    print(
        f"{'route':<12} {'arm':<14} {'vs':<11} {'rounds':>6} {'ratio':>6} {'(min-max)':>12} "
        f"{'added wall µs':>14} {'added CPU µs':>13}"
    )
    for route, rows in table.items():
        for p in rows:
            cpu = "-" if p.added_cpu_us is None else f"{p.added_cpu_us:.0f}"
            print(
                f"{route:<12} {p.arm:<14} {p.base:<11} {p.rounds:>6} {p.ratio:>6.3f} "
                f"{f'({p.ratio_min:.2f}-{p.ratio_max:.2f})':>12} {p.added_wall_us:>14.0f} {cpu:>13}"
            )


def as_json(table: Mapping[str, list[Paired]]) -> dict[str, Any]:
    return {route: [p.__dict__ for p in rows] for route, rows in table.items()}
