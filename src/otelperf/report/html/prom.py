"""The report's time window and its parsing; the Prometheus client is :mod:`otelperf.backends`.

``PrometheusUnreachable`` is the backends' :class:`~otelperf.backends.BackendError` (Prometheus
could not be read: refused, timeout, HTTP error, not Prometheus); ``PrometheusQueryError``:
Prometheus read the query and refused it.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from otelperf.backends import BackendError, Prometheus, PrometheusQueryError

__all__ = [
    "SCRAPE_INTERVAL_S",
    "Prometheus",
    "PrometheusQueryError",
    "PrometheusUnreachable",
    "Window",
    "parse_duration",
    "parse_time",
    "promql_duration",
]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SCRAPE_INTERVAL_S = 5  # prometheus/prometheus.yml: a step shorter than this would show gaps


PrometheusUnreachable = BackendError


def parse_duration(text: str) -> float:
    """``"15m"`` -> 900.0 seconds; ValueError names the bad value."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 30s, 15m, 2h, 1d)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_time(text: str) -> float:
    """Unix seconds, or an RFC 3339 / ISO 8601 time (``2026-11-27T13:00:00Z``); naive means UTC."""
    from datetime import datetime, timezone

    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (unix seconds or e.g. 2026-11-27T13:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def promql_duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


@dataclass(frozen=True)
class Window:
    """The report's time range and the step of its charts (unix seconds)."""

    start: float
    end: float
    step: float

    @classmethod
    def of(cls, start: float, end: float, points: int = 90) -> Window:
        # Whole seconds: the chart's steps then match Prometheus' timestamps exactly.
        start, end = float(math.floor(start)), float(math.ceil(end))
        if end <= start:
            raise ValueError("the report window must end after it starts")
        step = max(
            SCRAPE_INTERVAL_S, math.ceil((end - start) / points / SCRAPE_INTERVAL_S) * SCRAPE_INTERVAL_S
        )
        return cls(start, end, float(step))

    @classmethod
    def since(cls, duration: str, now: float | None = None) -> Window:
        end = time.time() if now is None else now
        return cls.of(end - parse_duration(duration), end)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def rate_range(self) -> float:
        """The range each chart point looks back over: a few scrapes, so no point falls between two."""
        return max(self.step, 4 * SCRAPE_INTERVAL_S)
