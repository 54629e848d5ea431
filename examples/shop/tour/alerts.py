"""Step 7: the budgets' Prometheus alerts, and which of them reached Alertmanager.

Polls Prometheus' alerts and Alertmanager's (at most ``wait_s``) until an alert fired and reached
Alertmanager and no pending one would fire before the deadline; prints them grouped by rule.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from examples.shop.tour.common import BUDGETS_FILE, alertmanager, clock, prometheus, relative, say
from otelperf.backends import PrometheusAlert


@dataclass(frozen=True)
class Alert:
    alert: PrometheusAlert
    fires_at: float | None  # active_at + the rule's `for:` (firing: when it fired)

    @property
    def name(self) -> str:
        return self.alert.name

    @property
    def state(self) -> str:  # "firing" | "pending" (Prometheus); pending alerts never reach Alertmanager
        return self.alert.state

    @property
    def active_since(self) -> float:
        return self.alert.active_at or 0.0

    @property
    def summary(self) -> str:
        return self.alert.annotations.get("summary", "")

    @property
    def route(self) -> str:
        labels = self.alert.labels
        if "http_route" in labels:
            return f"{labels.get('http_request_method', '')} {labels['http_route']}".strip()
        return labels.get("route", "")


def prometheus_alerts() -> list[Alert]:
    raw = prometheus.alerts()
    # /api/v1/alerts does not say an alert's `for:`; its rule does.
    durations = (
        {
            frozenset(a.labels.items()): rule.duration_s
            for rule in prometheus.alert_rules()
            for a in rule.alerts
        }
        if raw
        else {}
    )
    out = []
    for a in raw:
        duration = durations.get(frozenset(a.labels.items()))
        fires_at = a.active_at + duration if a.active_at is not None and duration is not None else None
        out.append(Alert(a, fires_at))
    return sorted(out, key=lambda a: (a.state != "firing", a.name == "SlowQueries", a.name, a.route))


def delivered(alert: Alert, received: list[Mapping[str, str]]) -> bool:
    # Alertmanager's copy carries Prometheus' labels (plus any external labels).
    return any(alert.alert.labels.items() <= labels.items() for labels in received)


def show_alerts(wait_s: float, run_start: float) -> tuple[int, int]:
    """Prints the alerts; returns (firing, of those delivered to Alertmanager)."""
    say()
    print("== Alerts: the budgets' Prometheus rules, delivered to Alertmanager ==")
    print(
        f"(prometheus/rules/otelperf.rules.yml, generated from {relative(BUDGETS_FILE)}: "
        "p95/p99/error rate per route, throughput floor, DB, cache, SLO burn. `for: 1m`: a breach "
        "fires after holding a minute; SlowQueries fires at once)"
    )
    deadline = time.time() + wait_s
    next_note = 0.0
    alerts: list[Alert] = []
    received: list[Mapping[str, str]] = []
    while True:
        try:
            alerts, received = prometheus_alerts(), [a.labels for a in alertmanager.alerts()]
        except (OSError, ValueError) as exc:  # BackendError, PrometheusQueryError
            say(f"alerts: query failed ({type(exc).__name__}: {exc}); retrying")
        firing = [a for a in alerts if a.state == "firing"]
        # Pending alerts that will fire before the deadline are worth the wait: they are the
        # budget breaches of this run (a firing alert reaches Alertmanager at the next evaluation).
        coming = [a for a in alerts if a.state == "pending" and (a.fires_at or deadline + 1) <= deadline]
        settled = bool(firing) and not coming and all(delivered(a, received) for a in firing)
        if settled or time.time() >= deadline:
            break
        if time.time() >= next_note:
            soonest = f"; the next fires at {clock(min(a.fires_at or 0 for a in coming))}" if coming else ""
            say(
                f"alerts: {len(firing)} firing, {len(alerts) - len(firing)} pending{soonest}; "
                f"{len(received)} in Alertmanager (waiting at most {deadline - time.time():.0f} s more)"
            )
            next_note = time.time() + 10
        time.sleep(2)
    now = time.time()
    firing = [a for a in alerts if a.state == "firing"]
    print(
        f"\nPrometheus {prometheus.url}/api/v1/alerts at {clock(now)}: {len(firing)} firing, "
        f"{len(alerts) - len(firing)} pending"
    )
    groups: dict[tuple[str, str], list[Alert]] = {}
    for a in alerts:
        groups.setdefault((a.state, a.name), []).append(a)
    for (state, name), members in groups.items():
        if state == "firing":
            since = min(a.fires_at or a.active_since for a in members)
            n_in = sum(delivered(a, received) for a in members)
            what = f"FIRING   since {clock(since)}, {n_in} of {len(members)} in Alertmanager"
            if min(a.active_since for a in members) < run_start:
                what += " (some active before this run: an earlier shop run is in the 5m window)"
        else:
            first = min((a.fires_at for a in members if a.fires_at), default=None)
            when = f", the first at {clock(first)} (in {max(0.0, first - now):.0f} s)" if first else ""
            what = f"pending  (fires if it holds for the rule's `for:`{when})"
        print(f"   {name} x {len(members)}: {what}")
        for a in sorted(members, key=lambda a: -a.alert.value)[:3]:
            summary = a.summary if len(a.summary) <= 100 else a.summary[:99] + "…"
            print(f"      {summary}")
        if len(members) > 3:
            print(f"      ... and {len(members) - 3} more")
    if not alerts:
        print("   none firing or pending")
    names = Counter(labels.get("alertname", "?") for labels in received)
    listed = ": " + ", ".join(f"{n} {name}" for name, n in names.most_common()) if names else ""
    print(f"\nAlertmanager {alertmanager.url}/api/v2/alerts: {len(received)} alert(s){listed}")
    in_alertmanager = sum(delivered(a, received) for a in firing)
    if not in_alertmanager:
        print(
            f"   no alert reached Alertmanager within {wait_s:.0f} s; the pending ones fire if their "
            "condition holds for the rule's `for:` (look again with the commands below)"
        )
    print(f"   curl -s {prometheus.url}/api/v1/alerts\n   curl -s {alertmanager.url}/api/v2/alerts")
    print(f"   UI: {prometheus.url}/alerts  {alertmanager.ui_url()}")
    return len(firing), in_alertmanager
