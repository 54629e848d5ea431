"""Alertmanager's API v2: the alerts it holds, its silences and its status.

>>> am = Alertmanager()  # http://127.0.0.1:9093
>>> [(a.name, a.state, a.receivers) for a in am.alerts()]  # doctest: +SKIP
[('LatencyP95OverBudget', 'active', ('ticket',))]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otelperf.backends._http import DEFAULT_TIMEOUT_S, BackendBadAnswer, get_json
from otelperf.backends.prometheus import parse_rfc3339

__all__ = ["ALERTMANAGER_URL", "Alertmanager", "AlertmanagerAlert", "Silence"]

ALERTMANAGER_URL = "http://127.0.0.1:9093"


@dataclass(frozen=True)
class AlertmanagerAlert:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str  # "active" | "suppressed" (silenced or inhibited) | "unprocessed"
    receivers: tuple[str, ...]
    starts_at: float | None  # unix seconds
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Silence:
    id: str
    state: str  # "active" | "pending" | "expired"
    matchers: tuple[Mapping[str, Any], ...]
    created_by: str
    comment: str
    ends_at: float | None


def _strings(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw or {}).items()}


class Alertmanager:
    """A client of Alertmanager's ``/api/v2``. Errors: :class:`~otelperf.backends.BackendError`."""

    def __init__(self, url: str = ALERTMANAGER_URL, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _list(self, path: str) -> list[Any]:
        url = f"{self.url}/api/v2/{path}"
        document = get_json(url, timeout=self.timeout)
        if not isinstance(document, list):
            raise BackendBadAnswer(f"{url}: expected a JSON list", url=url)
        return document

    def alerts(self) -> list[AlertmanagerAlert]:
        """Every alert it holds (active, silenced or inhibited)."""
        out = []
        for raw in self._list("alerts"):
            status = raw.get("status") or {}
            out.append(
                AlertmanagerAlert(
                    labels=_strings(raw.get("labels")),
                    annotations=_strings(raw.get("annotations")),
                    state=str(status.get("state", "")),
                    receivers=tuple(str(r.get("name", "")) for r in raw.get("receivers") or ()),
                    starts_at=parse_rfc3339(str(raw.get("startsAt") or "")),
                    fingerprint=str(raw.get("fingerprint", "")),
                )
            )
        return out

    def silences(self) -> list[Silence]:
        return [
            Silence(
                id=str(raw.get("id", "")),
                state=str((raw.get("status") or {}).get("state", "")),
                matchers=tuple(raw.get("matchers") or ()),
                created_by=str(raw.get("createdBy", "")),
                comment=str(raw.get("comment", "")),
                ends_at=parse_rfc3339(str(raw.get("endsAt") or "")),
            )
            for raw in self._list("silences")
        ]

    def status(self) -> dict[str, Any]:
        """``/api/v2/status`` as JSON: cluster state, the loaded config (``config.original``), version."""
        url = f"{self.url}/api/v2/status"
        document = get_json(url, timeout=self.timeout)
        if not isinstance(document, dict):
            raise BackendBadAnswer(f"{url}: expected a JSON object", url=url)
        return document

    def ui_url(self) -> str:
        return f"{self.url}/#/alerts"
