"""Alertmanager's /api/v2: the alerts it holds, silences, status."""

from __future__ import annotations

import pytest
from tests.unit.backends.fake_backend import fake_backend

from otelperf.backends import Alertmanager, BackendBadAnswer

# The shape of GET /api/v2/alerts (Alertmanager 0.2x), with the generated routing tree's receiver.
ALERTS = [
    {
        "annotations": {"summary": "shop: GET /orders p95 0.61s is over its 500ms budget"},
        "endsAt": "2026-12-02T10:35:19.251Z",
        "fingerprint": "4c1f3f1e1a2b3c4d",
        "receivers": [{"name": "ticket"}],
        "startsAt": "2026-12-02T10:29:19.251925238Z",
        "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
        "updatedAt": "2026-12-02T10:30:19.251Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=...",
        "labels": {"alertname": "LatencyP95OverBudget", "job": "shop", "severity": "ticket"},
    }
]
SILENCES = [
    {
        "id": "a1b2",
        "status": {"state": "active"},
        "matchers": [{"name": "alertname", "value": "SlowQueries", "isRegex": False, "isEqual": True}],
        "startsAt": "2026-12-02T10:00:00Z",
        "endsAt": "2026-12-02T12:00:00Z",
        "createdBy": "demo",
        "comment": "known slow report",
    }
]


def test_alerts_silences_and_status() -> None:
    status = {"cluster": {"status": "disabled"}, "config": {"original": "route:\n  receiver: ticket\n"}}
    answers = {
        "/api/v2/alerts": (200, ALERTS),
        "/api/v2/silences": (200, SILENCES),
        "/api/v2/status": (200, status),
    }
    with fake_backend(answers) as backend:
        am = Alertmanager(backend.url + "/")
        [alert] = am.alerts()
        [silence] = am.silences()
        assert am.status()["cluster"]["status"] == "disabled"
    assert (alert.name, alert.state, alert.receivers) == ("LatencyP95OverBudget", "active", ("ticket",))
    assert alert.labels["severity"] == "ticket" and alert.fingerprint == "4c1f3f1e1a2b3c4d"
    assert alert.starts_at == pytest.approx(1796207359.251925, abs=1e-6)
    assert (silence.id, silence.state, silence.created_by) == ("a1b2", "active", "demo")
    assert silence.matchers[0]["value"] == "SlowQueries"
    assert silence.ends_at == 1796212800.0
    assert am.ui_url() == f"{backend.url}/#/alerts"


def test_an_answer_that_is_not_a_list_is_a_bad_answer() -> None:
    with (
        fake_backend({"/api/v2/alerts": (200, {"alerts": []})}) as backend,
        pytest.raises(BackendBadAnswer, match="/api/v2/alerts: expected a JSON list"),
    ):
        Alertmanager(backend.url).alerts()
