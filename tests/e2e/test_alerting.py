"""Alertmanager runs under `otelperf stack up` and Prometheus sends it the generated alerts."""

from __future__ import annotations

import os
import time

from tests.conftest import skip_or_fail
from tests.e2e.conftest import StackUrls

from otelperf.backends import Alertmanager, Prometheus
from otelperf.stack import Stack, StackError
from otelperf.stack.components import ALERTMANAGER, find_binary


def test_alertmanager_starts_with_the_stack_and_prometheus_sees_it(stack: StackUrls) -> None:
    """On top of the session's stack (whose teardown stops everything it started, Alertmanager too)."""
    del stack
    try:
        find_binary(ALERTMANAGER, os.environ)
    except StackError as exc:
        skip_or_fail(f"prometheus-alertmanager is not installed (scripts/install_stack.sh): {exc}")
    # Starts what is not running (Alertmanager) and leaves running components alone.
    result = Stack(with_alertmanager=True).up(timeout=60)
    assert "alertmanager" in result.started + result.already_running

    status = Alertmanager(timeout=5).status()
    assert status["cluster"]["status"] == "disabled"  # no gossip port on 0.0.0.0
    assert "receiver: ticket" in status["config"]["original"]

    prometheus = Prometheus(timeout=5)
    deadline = time.monotonic() + 30  # Prometheus discovers it within a few evaluation cycles
    active: list[str] = []
    while time.monotonic() < deadline:
        active = prometheus.alertmanagers()
        if active:
            break
        time.sleep(1)
    assert active == ["http://127.0.0.1:9093/api/v2/alerts"]

    groups = {rule.group for rule in prometheus.alert_rules()}
    assert {"otelperf.http.alerts", "otelperf.slo.alerts", "otelperf.db.alerts"} <= groups
