"""Small clients for the backends otelperf's telemetry ends up in, shared by ``otelperf report``,
``otelperf baseline``, ``otelperf stack status``, the examples' tours and the tests.

Map:
- ``jaeger``: api_v3 trace search and get, OTLP JSON -> :class:`Span` / :class:`Trace`
- ``prometheus``: ``/api/v1`` queries (vector -> :class:`Sample`, matrix -> :class:`RangeSeries`),
  exemplars, series and labels, alerts and alerting rules
- ``alertmanager``: ``/api/v2`` alerts, silences, status
- ``exposition``: the text format of a process's own ``/metrics`` (the collector's counters)
- ``_http``: GET with a timeout, never through a proxy; every failure a :class:`BackendError`

Defaults are the local stack's loopback ports (Jaeger 16686, Prometheus 9090, Alertmanager 9093).

    >>> from otelperf.backends import Jaeger, Prometheus
    >>> Prometheus().value('sum(otelperf_findings_total{job="shop"})')  # doctest: +SKIP
    42.0
    >>> [t.root.name for t in Jaeger().search("shop", start=t0, end=t1)]  # doctest: +SKIP
    ['GET /orders', 'GET /orders-eager', ...]
"""

from __future__ import annotations

from otelperf.backends._http import (
    BackendBadAnswer,
    BackendError,
    BackendHTTPError,
    BackendUnreachable,
    get_json,
    get_text,
)
from otelperf.backends.alertmanager import ALERTMANAGER_URL, Alertmanager, AlertmanagerAlert, Silence
from otelperf.backends.jaeger import JAEGER_URL, Jaeger, Span, SpanEvent, SpanKind, Trace, parse_spans
from otelperf.backends.prometheus import (
    PROMETHEUS_URL,
    AlertRule,
    Exemplar,
    ExemplarSeries,
    Prometheus,
    PrometheusAlert,
    PrometheusQueryError,
    RangeSeries,
    Sample,
)

__all__ = [
    "ALERTMANAGER_URL",
    "JAEGER_URL",
    "PROMETHEUS_URL",
    "AlertRule",
    "Alertmanager",
    "AlertmanagerAlert",
    "BackendBadAnswer",
    "BackendError",
    "BackendHTTPError",
    "BackendUnreachable",
    "Exemplar",
    "ExemplarSeries",
    "Jaeger",
    "Prometheus",
    "PrometheusAlert",
    "PrometheusQueryError",
    "RangeSeries",
    "Sample",
    "Silence",
    "Span",
    "SpanEvent",
    "SpanKind",
    "Trace",
    "get_json",
    "get_text",
    "parse_spans",
]
