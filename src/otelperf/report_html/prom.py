"""A small Prometheus HTTP API client: instant and range queries, and the report's time window.

Loopback backends are read without any ``http_proxy`` from the environment (a proxy would not
reach 127.0.0.1, and must not see the queries).
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SCRAPE_INTERVAL_S = 5  # prometheus/prometheus.yml: a step shorter than this would show gaps


class PrometheusUnreachable(Exception):
    """Prometheus did not answer (connection refused, timeout, not Prometheus)."""


class PrometheusQueryError(Exception):
    """Prometheus answered with an error (bad PromQL, too many points)."""


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


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with _OPENER.open(url, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422: bad query; the body says why
            try:
                body = json.loads(exc.read())
            except ValueError:
                raise PrometheusUnreachable(f"{self.url} answered HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: not JSON
            raise PrometheusUnreachable(f"cannot read {self.url}: {exc}") from None
        if not isinstance(body, dict) or "status" not in body:
            raise PrometheusUnreachable(f"{self.url} does not look like Prometheus")
        if body["status"] != "success":
            raise PrometheusQueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def check(self) -> None:
        """Raise PrometheusUnreachable unless the API answers."""
        self._get("/api/v1/query", {"query": "1"})

    def instant(self, promql: str, at: float) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})
        result: list[dict[str, Any]] = data["result"]
        return result

    def range(self, promql: str, window: Window) -> list[dict[str, Any]]:
        params = {
            "query": promql,
            "start": f"{window.start:.3f}",
            "end": f"{window.end:.3f}",
            "step": f"{window.step:g}",
        }
        result: list[dict[str, Any]] = self._get("/api/v1/query_range", params)["result"]
        return result

    def exemplars(self, promql: str, window: Window) -> list[dict[str, Any]]:
        params = {"query": promql, "start": f"{window.start:.3f}", "end": f"{window.end:.3f}"}
        result: list[dict[str, Any]] = self._get("/api/v1/query_exemplars", params)
        return result


def number(text: str) -> float | None:
    """A sample value; NaN/Inf (a quantile over no requests) reads as "no value"."""
    value = float(text)
    return value if math.isfinite(value) else None
