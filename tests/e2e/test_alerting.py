"""Alertmanager runs under `otelperf stack up` and Prometheus sends it the generated alerts."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from typing import Any

from tests.conftest import skip_or_fail
from tests.e2e.conftest import StackUrls

from otelperf.stack import Stack, StackError
from otelperf.stack.components import ALERTMANAGER, find_binary

PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER_URL = "http://127.0.0.1:9093"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> Any:
    with _OPENER.open(url, timeout=5) as response:
        return json.load(response)


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

    status = get(f"{ALERTMANAGER_URL}/api/v2/status")
    assert status["cluster"]["status"] == "disabled"  # no gossip port on 0.0.0.0
    assert "receiver: ticket" in status["config"]["original"]

    deadline = time.monotonic() + 30  # Prometheus discovers it within a few evaluation cycles
    active: list[str] = []
    while time.monotonic() < deadline:
        active = [a["url"] for a in get(f"{PROMETHEUS}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]]
        if active:
            break
        time.sleep(1)
    assert active == ["http://127.0.0.1:9093/api/v2/alerts"]

    groups = {g["name"] for g in get(f"{PROMETHEUS}/api/v1/rules")["data"]["groups"]}
    assert {"otelperf.http.alerts", "otelperf.slo.alerts", "otelperf.db.alerts"} <= groups
