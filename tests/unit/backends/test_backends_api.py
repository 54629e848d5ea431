"""The public surface of otelperf.backends, pinned: a name added or dropped is a decision."""

from __future__ import annotations

import otelperf.backends


def test_public_names() -> None:
    assert sorted(otelperf.backends.__all__) == sorted(
        [
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
    )
    assert all(hasattr(otelperf.backends, name) for name in otelperf.backends.__all__)


def test_defaults_are_the_local_stacks_loopback_ports() -> None:
    assert otelperf.backends.Jaeger().url == "http://127.0.0.1:16686"
    assert otelperf.backends.Prometheus().url == "http://127.0.0.1:9090"
    assert otelperf.backends.Alertmanager().url == "http://127.0.0.1:9093"
