"""Prometheus' /api/v1: vector, scalar and matrix answers as typed rows; a refused query apart
from a backend that cannot be read; alerts and alerting rules."""

from __future__ import annotations

import math

import pytest
from tests.unit.backends.fake_backend import fake_backend

from otelperf.backends import (
    BackendBadAnswer,
    BackendError,
    BackendHTTPError,
    Prometheus,
    PrometheusQueryError,
)
from otelperf.backends.prometheus import parse_rfc3339

# Answers recorded from the local stack's Prometheus (`otelperf stack up`).
VECTOR = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [
            {"metric": {"job": "jaeger"}, "value": [1796207362.386, "1"]},
            {"metric": {"job": "otelcol"}, "value": [1796207362.386, "NaN"]},
        ],
    },
}
SCALAR = {"status": "success", "data": {"resultType": "scalar", "result": [1796207362.401, "1"]}}
MATRIX = {
    "status": "success",
    "data": {
        "resultType": "matrix",
        "result": [
            {
                "metric": {"__name__": "up", "instance": "127.0.0.1:14269", "job": "jaeger"},
                "values": [[1796207357, "1"], [1796207362, "0.5"]],
            }
        ],
    },
}
BAD_DATA = {
    "status": "error",
    "errorType": "bad_data",
    "error": 'invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
}
ALERT = {
    "labels": {"alertname": "LatencyP95OverBudget", "job": "shop", "route": "GET /orders"},
    "annotations": {"summary": "shop: GET /orders p95 0.61s is over its 500ms budget"},
    "state": "firing",
    "activeAt": "2026-12-02T10:29:19.251925238Z",
    "value": "6.1e-01",
}
RULES = {
    "status": "success",
    "data": {
        "groups": [
            {"name": "otelperf.budgets", "rules": [], "interval": 5},
            {
                "name": "otelperf.http.alerts",
                "rules": [
                    {
                        "state": "firing",
                        "name": "LatencyP95OverBudget",
                        "query": "job_route:http_server_request_duration_seconds:p95_5m > 0.5",
                        "duration": 60,
                        "labels": {"budget": "p95", "severity": "ticket", "route": "GET /orders"},
                        "annotations": {"summary": "{{ $labels.job }}: p95 over budget"},
                        "alerts": [ALERT],
                        "health": "ok",
                        "type": "alerting",
                    }
                ],
            },
        ]
    },
}


def test_an_instant_vector_becomes_samples_and_nan_reads_as_no_value() -> None:
    with fake_backend({"/api/v1/query": (200, VECTOR)}) as backend:
        samples = Prometheus(backend.url).query("sum by (job) (up)", at=1796207362.386)
    assert [(dict(s.labels), s.timestamp) for s in samples] == [
        ({"job": "jaeger"}, 1796207362.386),
        ({"job": "otelcol"}, 1796207362.386),
    ]
    assert samples[0].value == 1.0 and samples[0].finite == 1.0
    assert math.isnan(samples[1].value) and samples[1].finite is None
    assert backend.asked == [("/api/v1/query", {"query": "sum by (job) (up)", "time": "1796207362.386"})]


def test_a_scalar_and_the_first_value() -> None:
    with fake_backend({"/api/v1/query": (200, SCALAR)}) as backend:
        prom = Prometheus(backend.url)
        [sample] = prom.query("1")
        assert (dict(sample.labels), sample.value) == ({}, 1.0)
        assert prom.value("1") == 1.0
        prom.check()
    with fake_backend(
        {"/api/v1/query": (200, {"status": "success", "data": {"resultType": "vector", "result": []}})}
    ) as b:
        assert Prometheus(b.url).value("sum(nothing)") is None


def test_a_range_query_becomes_series_of_points() -> None:
    with fake_backend({"/api/v1/query_range": (200, MATRIX)}) as backend:
        [series] = Prometheus(backend.url).query_range("up", 1796207342, 1796207362, 5)
    assert series.labels["job"] == "jaeger"
    assert series.points == ((1796207357.0, 1.0), (1796207362.0, 0.5))
    assert backend.asked[0][1] == {
        "query": "up",
        "start": "1796207342.000",
        "end": "1796207362.000",
        "step": "5",
    }


def test_a_refused_query_is_a_query_error_not_a_backend_error() -> None:
    with (
        fake_backend({"/api/v1/query": (400, BAD_DATA)}) as backend,
        pytest.raises(PrometheusQueryError) as caught,
    ):
        Prometheus(backend.url).query("sum(")
    error = caught.value
    assert str(error) == 'bad_data: invalid parameter "query": 1:5: parse error: unclosed left parenthesis'
    assert (error.error_type, error.query) == ("bad_data", "sum(")
    assert not isinstance(error, BackendError)


def test_a_server_error_without_json_is_a_backend_error() -> None:
    with (
        fake_backend({"/api/v1/query": (503, "Service Unavailable: TSDB not ready\n")}) as backend,
        pytest.raises(BackendHTTPError, match="/api/v1/query answered HTTP 503: Service Unavailable: TSDB"),
    ):
        Prometheus(backend.url).query("up")


def test_json_that_is_not_prometheus_is_a_bad_answer() -> None:
    with (
        fake_backend({"/api/v1/query": (200, {"results": []})}) as backend,
        pytest.raises(BackendBadAnswer, match="/api/v1/query does not answer like Prometheus"),
    ):
        Prometheus(backend.url).query("up")
    broken = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
    with (
        fake_backend({"/api/v1/query": (200, broken)}) as backend,
        pytest.raises(BackendBadAnswer, match=r"/api/v1/query: unexpected answer \(KeyError"),
    ):
        Prometheus(backend.url).query("up")


def test_alerts_and_alerting_rules() -> None:
    answers = {
        "/api/v1/alerts": (200, {"status": "success", "data": {"alerts": [ALERT]}}),
        "/api/v1/rules": (200, RULES),
        "/api/v1/alertmanagers": (
            200,
            {
                "status": "success",
                "data": {"activeAlertmanagers": [{"url": "http://127.0.0.1:9093/api/v2/alerts"}]},
            },
        ),
    }
    with fake_backend(answers) as backend:
        prom = Prometheus(backend.url)
        [alert] = prom.alerts()
        [rule] = prom.alert_rules()
        assert prom.alertmanagers() == ["http://127.0.0.1:9093/api/v2/alerts"]
    assert (alert.name, alert.state, alert.value) == ("LatencyP95OverBudget", "firing", 0.61)
    assert alert.active_at == pytest.approx(1796207359.251925238, abs=1e-6)
    assert alert.annotations["summary"].endswith("over its 500ms budget")
    assert (rule.group, rule.name, rule.duration_s, rule.health, rule.state) == (
        "otelperf.http.alerts",
        "LatencyP95OverBudget",
        60.0,
        "ok",
        "firing",
    )
    assert rule.alerts == (alert,)
    assert ("/api/v1/rules", {"type": "alert"}) in backend.asked


def test_series_and_labels() -> None:
    answers = {
        "/api/v1/series": (200, {"status": "success", "data": [{"__name__": "up", "job": "shop"}]}),
        "/api/v1/labels": (200, {"status": "success", "data": ["__name__", "job"]}),
        "/api/v1/label/job/values": (200, {"status": "success", "data": ["shop"]}),
    }
    with fake_backend(answers) as backend:
        prom = Prometheus(backend.url)
        assert prom.series('{job="shop"}') == [{"__name__": "up", "job": "shop"}]
        assert prom.labels() == ["__name__", "job"]
        assert prom.label_values("job") == ["shop"]
    assert backend.asked[0] == ("/api/v1/series", {"match[]": '{job="shop"}'})


def test_times_with_nanoseconds_and_offsets() -> None:
    assert parse_rfc3339("2026-12-02T10:29:19Z") == 1796207359.0
    assert parse_rfc3339("2026-12-02T10:29:19.5Z") == 1796207359.5
    assert parse_rfc3339("2026-12-02T11:29:19.25+01:00") == 1796207359.25
    assert parse_rfc3339("2026-12-02T05:29:19-05:00") == 1796207359.0
    assert parse_rfc3339("0001-01-01T00:00:00Z") is None
    assert parse_rfc3339("") is None


def test_graph_url_quotes_the_query() -> None:
    assert Prometheus("http://p:9090/").graph_url('up{job="x"}') == (
        "http://p:9090/graph?g0.expr=up%7Bjob%3D%22x%22%7D&g0.tab=0&g0.range_input=15m"
    )
