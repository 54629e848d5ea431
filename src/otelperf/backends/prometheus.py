"""Prometheus' HTTP API: instant and range queries, exemplars, series and labels, rules and alerts.

Answers come back typed: a vector as :class:`Sample` rows, a matrix as :class:`RangeSeries`.
Values are floats as Prometheus computed them (NaN for a quantile over no requests).

    >>> prom = Prometheus()  # http://127.0.0.1:9090
    >>> for s in prom.query('sum by (http_route) (rate(http_server_request_duration_seconds_count[1m]))'):
    ...     print(s.labels["http_route"], s.value)  # doctest: +SKIP
    /orders 12.5

Errors: the backend could not be read -> :class:`~otelperf.backends.BackendError` (an OSError);
Prometheus read the query and refused it (bad PromQL, too many points) -> :class:`PrometheusQueryError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from otelperf.backends._http import (
    DEFAULT_TIMEOUT_S,
    BackendBadAnswer,
    BackendHTTPError,
    get_json,
    parse_json,
)

__all__ = [
    "PROMETHEUS_URL",
    "AlertRule",
    "Exemplar",
    "ExemplarSeries",
    "Prometheus",
    "PrometheusAlert",
    "PrometheusQueryError",
    "RangeSeries",
    "Sample",
    "parse_rfc3339",
]

PROMETHEUS_URL = "http://127.0.0.1:9090"


class PrometheusQueryError(ValueError):
    """Prometheus answered, and refused the query (``errorType`` bad_data, execution, ...)."""

    def __init__(self, error_type: str, error: str, query: str = "") -> None:
        super().__init__(f"{error_type}: {error}")
        self.error_type = error_type
        self.error = error
        self.query = query


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector (or the scalar answer, with no labels)."""

    labels: Mapping[str, str]
    value: float
    timestamp: float

    @property
    def finite(self) -> float | None:
        """The value, or None for NaN/Inf (a quantile over no requests reads as "no value")."""
        return self.value if math.isfinite(self.value) else None


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: ``(unix seconds, value)`` points, one per step with data."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Exemplar:
    labels: Mapping[str, str]  # e.g. trace_id, span_id
    value: float
    timestamp: float


@dataclass(frozen=True)
class ExemplarSeries:
    labels: Mapping[str, str]
    exemplars: tuple[Exemplar, ...]


@dataclass(frozen=True)
class PrometheusAlert:
    """An alert of ``/api/v1/alerts`` (or of a rule in ``/api/v1/rules``)."""

    name: str
    state: str  # "pending" | "firing" (Prometheus sends only firing ones on to Alertmanager)
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    active_at: float | None  # unix seconds: the first evaluation that found the condition true
    value: float  # the rule expression's value when last evaluated


@dataclass(frozen=True)
class AlertRule:
    group: str
    name: str
    query: str
    duration_s: float  # the rule's `for:`
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    health: str  # "ok" | "err" | "unknown"
    state: str  # "inactive" | "pending" | "firing"
    alerts: tuple[PrometheusAlert, ...] = field(default=())


def parse_rfc3339(text: str) -> float | None:
    """Prometheus' and Alertmanager's times (nanosecond fractions, ``Z`` or an offset) as unix
    seconds; None for an empty or zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.partition(".")
    fraction, zone = "", ""
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    else:
        for marker in ("Z", "+", "-"):
            cut = head.rfind(marker)
            if cut > 10:  # after the date's own dashes
                head, zone = head[:cut], head[cut:]
                break
    parsed = datetime.fromisoformat(head + (zone.replace("Z", "+00:00") or "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    # datetime takes at most microseconds: the fraction is added apart.
    return parsed.timestamp() + (float("0." + fraction) if fraction else 0.0)


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _alert(raw: Mapping[str, Any]) -> PrometheusAlert:
    labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
    return PrometheusAlert(
        name=labels.get("alertname", ""),
        state=str(raw.get("state", "")),
        labels=labels,
        annotations={str(k): str(v) for k, v in (raw.get("annotations") or {}).items()},
        active_at=parse_rfc3339(str(raw.get("activeAt") or "")),
        value=_float(raw.get("value")),
    )


class Prometheus:
    """A client of Prometheus' HTTP API (``/api/v1``)."""

    def __init__(self, url: str = PROMETHEUS_URL, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def api(self, path: str, params: Mapping[str, str] | None = None, *, query: str = "") -> Any:
        """The ``data`` of a successful answer to ``GET /api/v1/<path>``."""
        url = f"{self.url}/api/v1/{path.lstrip('/')}"
        try:
            body = get_json(url, params, timeout=self.timeout)
        except BackendHTTPError as exc:
            # 400/422: a bad query; the JSON body says why. Other statuses are the backend's trouble.
            if exc.status not in (400, 422):
                raise
            try:
                body = parse_json(exc.body, url=exc.url)
            except BackendBadAnswer:
                raise exc from None
            if not isinstance(body, dict) or body.get("status") != "error":
                raise exc from None
        if not isinstance(body, dict) or "status" not in body:
            raise BackendBadAnswer(f"{url} does not answer like Prometheus", url=url)
        if body["status"] != "success":
            raise PrometheusQueryError(str(body.get("errorType", "")), str(body.get("error", "")), query)
        return body.get("data")

    def _bad(self, path: str, exc: Exception) -> BackendBadAnswer:
        url = f"{self.url}/api/v1/{path}"
        return BackendBadAnswer(f"{url}: unexpected answer ({type(exc).__name__}: {exc})", url=url)

    def check(self) -> None:
        """Raise BackendError unless the query API answers."""
        self.query("1")

    # --- queries ------------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query (at unix time ``at``, default now)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params, query=promql)
        try:
            kind, result = data.get("resultType"), data.get("result")
            if kind in ("scalar", "string"):
                return [Sample({}, _float(result[1]), float(result[0]))]
            return [
                Sample(dict(row.get("metric", {})), _float(row["value"][1]), float(row["value"][0]))
                for row in result or ()
            ]
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._bad("query", exc) from None

    def value(self, promql: str, at: float | None = None) -> float | None:
        """The first series' value of an aggregating query (``sum(...)``); None when there is none."""
        result = self.query(promql, at)
        return result[0].value if result else None

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[RangeSeries]:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self.api("query_range", params, query=promql)
        try:
            return [
                RangeSeries(
                    dict(row.get("metric", {})),
                    tuple((float(t), _float(v)) for t, v in row.get("values", ())),
                )
                for row in data.get("result") or ()
            ]
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._bad("query_range", exc) from None

    def exemplars(self, promql: str, start: float, end: float) -> list[ExemplarSeries]:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        data = self.api("query_exemplars", params, query=promql)
        return [
            ExemplarSeries(
                dict(row.get("seriesLabels", {})),
                tuple(
                    Exemplar(dict(e.get("labels", {})), _float(e.get("value")), _float(e.get("timestamp")))
                    for e in row.get("exemplars", ())
                ),
            )
            for row in data or ()
        ]

    # --- metadata -----------------------------------------------------------------------------

    def series(self, match: str) -> list[dict[str, str]]:
        """The label sets of every series matching the selector ``match``."""
        return [dict(s) for s in self.api("series", {"match[]": match}) or ()]

    def labels(self) -> list[str]:
        return [str(name) for name in self.api("labels") or ()]

    def label_values(self, name: str) -> list[str]:
        return [str(value) for value in self.api(f"label/{name}/values") or ()]

    # --- alerting -----------------------------------------------------------------------------

    def alerts(self) -> list[PrometheusAlert]:
        """Pending and firing alerts."""
        return [_alert(a) for a in (self.api("alerts") or {}).get("alerts", ())]

    def alert_rules(self) -> list[AlertRule]:
        """Every alerting rule, with its health, state and current alerts."""
        out = []
        for group in (self.api("rules", {"type": "alert"}) or {}).get("groups", ()):
            for rule in group.get("rules", ()):
                out.append(
                    AlertRule(
                        group=str(group.get("name", "")),
                        name=str(rule.get("name", "")),
                        query=str(rule.get("query", "")),
                        duration_s=_float(rule.get("duration", 0)),
                        labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
                        annotations={str(k): str(v) for k, v in (rule.get("annotations") or {}).items()},
                        health=str(rule.get("health", "")),
                        state=str(rule.get("state", "")),
                        alerts=tuple(_alert(a) for a in rule.get("alerts") or ()),
                    )
                )
        return out

    def alertmanagers(self) -> list[str]:
        """The URLs of the Alertmanagers Prometheus sends alerts to."""
        data = self.api("alertmanagers") or {}
        return [str(a["url"]) for a in data.get("activeAlertmanagers", ())]

    def graph_url(self, promql: str, range_input: str = "15m") -> str:
        """The query in Prometheus' own graph page."""
        from urllib.parse import quote

        return f"{self.url}/graph?g0.expr={quote(promql, safe='')}&g0.tab=0&g0.range_input={range_input}"
