"""From one request's samples to what a finding says: the functions its app time went to.

Only the request's *app* time counts: a sample taken inside a database, cache or outgoing-HTTP
span (the instants :func:`otelperf.detectors.breakdown.attribute` gives to those components) is
dropped, and a sample's weight loses the part of its interval such spans covered. So the
milliseconds here are a split of the breakdown's "app" figure.

Each remaining sample goes to the innermost frame of application code on its stack (see
:mod:`._code`) and, when the sampled instant was inside a library called from there, to that
library as well: "70 ms compute_discount (pricing.py:88)" is time in the function's own lines
(and in the C code they call); "30 ms in pydantic from create_order (routes.py:42)" is time inside
pydantic called at that line; "8 ms in fastapi" is framework work with no application frame on
the stack. The line is the one most samples were at.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from otelperf.profiler import _code, _threadpool
from otelperf.profiler._sampler import FRAMES, RequestSamples

__all__ = ["AppProfile", "HotFunction", "analyze", "fold"]

_HIDDEN = frozenset((_threadpool.run_for.__code__,))  # the profiler's own frame on worker threads

MAX_FOLDED_BYTES = 4096
MAX_LABEL_CHARS = 120
TOP = 5
_NOT_SAMPLED_SHARE = 0.05  # say "not sampled" only when it is at least this share of app time


@dataclass(frozen=True)
class HotFunction:
    """One place app time went to."""

    ms: float
    function: str | None  # the innermost application function; None: none on the stack
    path: str | None  # its file, relative to the working directory when under it
    line: int | None  # the line most samples were at
    library: str | None  # the library the time was spent in, None: the function's own lines

    def describe(self) -> str:
        where = ""
        if self.function is not None:
            where = f"{self.function} ({_basename(self.path)}:{self.line})"
        if self.library is None:
            return f"{self.ms:.0f} ms {where}"
        return f"{self.ms:.0f} ms in {self.library}" + (f" from {where}" if where else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ms": round(self.ms, 3),
            "function": self.function,
            "file": self.path,
            "line": self.line,
            "library": self.library,
        }


@dataclass(frozen=True)
class AppProfile:
    """Where one request's app time went, from the profiler's samples."""

    app_ms: float  # the breakdown's app time of the request
    sampled_ms: float  # how much of it the samples cover (scaled down to app_ms at most)
    samples: int
    functions: list[HotFunction] = field(default_factory=list)  # largest first, at most TOP
    folded: str = ""  # "frame;frame;frame ms" lines, root first, at most MAX_FOLDED_BYTES
    dropped: int = 0  # samples and stacks the profiler's caps turned away

    @property
    def not_sampled_ms(self) -> float:
        return max(0.0, self.app_ms - self.sampled_ms)

    def summary(self, top: int = 3) -> str:
        """``"app 120 ms: 70 ms compute_discount (pricing.py:88), 30 ms in pydantic"``."""
        parts = [f.describe() for f in self.functions[:top]]
        if self.app_ms > 0 and self.not_sampled_ms >= _NOT_SAMPLED_SHARE * self.app_ms:
            parts.append(f"{self.not_sampled_ms:.0f} ms not sampled")
        return f"app {self.app_ms:.0f} ms: " + ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "app_ms": round(self.app_ms, 3),
            "sampled_ms": round(self.sampled_ms, 3),
            "not_sampled_ms": round(self.not_sampled_ms, 3),
            "samples": self.samples,
            "functions": [f.as_dict() for f in self.functions],
            "folded": self.folded,
            "dropped": self.dropped,
        }


def _basename(path: str | None) -> str:
    if not path:
        return "?"
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _overlap(start: int, end: int, segments: Sequence[tuple[int, int]], ends: list[int]) -> int:
    """Nanoseconds of [start, end) that the sorted, disjoint ``segments`` cover."""
    covered = 0
    i = bisect.bisect_right(ends, start)
    while i < len(segments) and segments[i][0] < end:
        s, e = segments[i]
        covered += max(0, min(e, end) - max(s, start))
        i += 1
    return covered


def _inside(t: int, segments: Sequence[tuple[int, int]], starts: list[int]) -> bool:
    i = bisect.bisect_right(starts, t) - 1
    return i >= 0 and segments[i][0] <= t < segments[i][1]


def analyze(
    record: RequestSamples,
    *,
    start_ns: int,
    end_ns: int,
    app_ms: float,
    elsewhere: Sequence[tuple[int, int]] = (),
) -> AppProfile | None:
    """The app profile of a request spanning [start_ns, end_ns]; ``elsewhere``: the sorted, disjoint
    instants that belong to its db/cache/http spans. None when no sample is left."""
    starts = [s for s, _ in elsewhere]
    ends = [e for _, e in elsewhere]
    stacks = record.stack_list()
    weights: dict[int, int] = {}  # stack index -> ns of app time
    kept = 0
    for t, w, index in zip(record.times, record.weights, record.stack_ids, strict=False):
        if t < start_ns or t > end_ns or (elsewhere and _inside(t, elsewhere, starts)):
            continue
        begin = max(t - w, start_ns)
        ns = t - begin - (_overlap(begin, t, elsewhere, ends) if elsewhere else 0)
        if ns > 0:
            weights[index] = weights.get(index, 0) + ns
            kept += 1
    if not weights:
        return None
    total_ns = sum(weights.values())
    sampled_ms = total_ns / 1e6
    scale = app_ms / sampled_ms if 0 < app_ms < sampled_ms else 1.0
    return AppProfile(
        app_ms=app_ms,
        sampled_ms=sampled_ms * scale,
        samples=kept,
        functions=_hot_functions(stacks, weights, scale),
        folded=_folded(stacks, weights, scale),
        dropped=record.dropped_samples + record.dropped_stacks,
    )


def _hot_functions(stacks: list[tuple[int, ...]], weights: dict[int, int], scale: float) -> list[HotFunction]:
    totals: dict[tuple[CodeType | None, str | None], int] = {}
    lines: dict[tuple[CodeType | None, str | None], dict[int, int]] = {}
    for index, ns in weights.items():
        stack = stacks[index]
        leaf_library: str | None = None
        app: tuple[CodeType, int] | None = None
        for depth, frame_id in enumerate(stack):
            code, line = FRAMES[frame_id]
            if code is None:
                if depth == 0:
                    leaf_library = "(unknown)"
                continue
            info = _code.info(code)
            if info.library is None:
                app = (code, line)
                break
            if depth == 0:
                leaf_library = info.library
        key = (app[0] if app else None, leaf_library)
        totals[key] = totals.get(key, 0) + ns
        if app is not None:
            per_line = lines.setdefault(key, {})
            per_line[app[1]] = per_line.get(app[1], 0) + ns
    out = []
    for (code, library), ns in sorted(totals.items(), key=lambda kv: -kv[1])[:TOP]:
        if code is None:
            out.append(HotFunction(ns / 1e6 * scale, None, None, None, library or "(unknown)"))
            continue
        info = _code.info(code)
        per_line = lines.get((code, library), {})
        line = max(per_line.items(), key=lambda kv: kv[1])[0] if per_line else code.co_firstlineno
        out.append(HotFunction(ns / 1e6 * scale, info.function, info.path, line, library))
    return out


def _label(text: str) -> str:
    text = text.replace(";", ":").replace("\n", " ")
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 3] + "..."


def fold(stack: tuple[int, ...]) -> str:
    """A stack (innermost first) as a flame graph's frames, root first, joined by ``;``.

    Application frames are ``function (file.py:line)``; a run of library frames between two of
    them is one frame naming those libraries (``starlette/fastapi``); the standard library's frames
    at the root (the event loop, the thread's bootstrap) are left out."""
    labels: list[str] = []
    run: list[str] = []  # the libraries of the current run of library frames, in order

    def close_run() -> None:
        if run:
            labels.append(_label("/".join(run)))
            run.clear()

    lead = True
    for frame_id in reversed(stack):
        code, line = FRAMES[frame_id]
        if code is None:
            close_run()
            labels.append("(more frames)")
            continue
        if code in _HIDDEN:
            continue
        info = _code.info(code)
        if info.library is None:
            close_run()
            labels.append(_label(f"{info.function} ({_basename(info.path)}:{line})"))
            lead = False
        elif not (lead and info.stdlib):
            lead = False
            if info.library not in run:
                run.append(info.library)
    close_run()
    return ";".join(labels) or "(no frames)"


def _folded(stacks: list[tuple[int, ...]], weights: dict[int, int], scale: float) -> str:
    merged: dict[str, int] = {}
    for index, ns in weights.items():
        key = fold(stacks[index])
        merged[key] = merged.get(key, 0) + ns
    lines: list[str] = []
    size = 0
    rest = 0
    for key, ns in sorted(merged.items(), key=lambda kv: -kv[1]):
        line = f"{key} {ns / 1e6 * scale:.1f}"
        cost = len(line.encode("utf-8")) + 1
        if size + cost > MAX_FOLDED_BYTES - 40:  # room for the "(other stacks)" line
            rest += ns
            continue
        lines.append(line)
        size += cost
    if rest:
        lines.append(f"(other stacks) {rest / 1e6 * scale:.1f}")
    return "\n".join(lines)
