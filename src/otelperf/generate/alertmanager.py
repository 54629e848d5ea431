"""Alertmanager configuration: route the generated alerts by severity (``page`` / ``ticket``).

Without ``--webhook-url`` both receivers are empty ("null" receivers): Alertmanager still receives,
groups and shows every alert (``/api/v2/alerts``, ``amtool alert``) but notifies nobody, which is
what a laptop or CI wants. With it, both post to that webhook (loopback by default).
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_alertmanager"]


def build_alertmanager(webhook_url: str | None = None) -> dict[str, Any]:
    def receiver(name: str, send_resolved: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name}
        if webhook_url:
            out["webhook_configs"] = [{"url": webhook_url, "send_resolved": send_resolved}]
        return out

    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "ticket",
            "group_by": ["alertname", "job", "route"],
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": "page",
                    "matchers": ['severity="page"'],
                    "group_wait": "0s",
                    "repeat_interval": "1h",
                },
                {"receiver": "ticket", "matchers": ['severity="ticket"'], "repeat_interval": "24h"},
            ],
        },
        # A fast burn already says everything a slow burn would: no second notification for it.
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="ErrorBudgetBurn"', 'severity="page"'],
                "target_matchers": ['alertname="ErrorBudgetBurn"', 'severity="ticket"'],
                "equal": ["job"],
            }
        ],
        "receivers": [receiver("page", True), receiver("ticket", False)],
    }
