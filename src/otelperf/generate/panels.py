"""The parts the Grafana dashboards are built from.

Datasources with fixed uids (``otelperf-prometheus``, ``otelperf-jaeger``) and the provisioning that
creates them; :class:`Board`, which lays panels out and writes the dashboard JSON; template
variables; and the PromQL pieces every dashboard shares (metric names, the ``$job`` selector,
``$__rate_interval``). What each dashboard shows is in :mod:`otelperf.generate.dashboards`.
"""

from __future__ import annotations

from typing import Any

from otelperf.budgets import Budgets, RouteBudget

__all__ = [
    "DB",
    "HOST",
    "HTTP",
    "JAEGER_UID",
    "JOB",
    "LOADTEST",
    "PROM",
    "PROMETHEUS_UID",
    "RI",
    "Board",
    "build_provisioning",
    "escape_label",
    "job_var",
    "ms_text",
    "quantile",
    "route_selector",
    "variable",
]

PROMETHEUS_UID = "otelperf-prometheus"
JAEGER_UID = "otelperf-jaeger"
PROM = {"type": "prometheus", "uid": PROMETHEUS_UID}
HTTP = "http_server_request_duration_seconds"
DB = "db_client_operation_duration_seconds"
LOADTEST = "otelperf_loadtest_request_duration_seconds"
JOB = 'job=~"$job"'
HOST = 'job="otelcol-exporter"'
RI = "$__rate_interval"


def escape_label(value: str) -> str:
    """``value`` as it goes between the double quotes of a PromQL label matcher."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def route_selector(route: RouteBudget) -> str:
    """The label matchers of one budgeted route's series (within ``$job``)."""
    return f'{JOB},http_route="{escape_label(route.template or "")}",http_request_method="{route.method}"'


def ms_text(ms: float) -> str:
    """``250`` -> ``"250 ms"``, ``1500`` -> ``"1.5 s"``: a budget as a panel description says it."""
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


class Board:
    """Lays panels out left to right, 24 columns wide, and numbers them."""

    def __init__(self, uid: str, title: str, description: str, variables: list[dict[str, Any]]) -> None:
        self.uid, self.title, self.description, self.variables = uid, title, description, variables
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(
        self,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        kind: str = "timeseries",
        w: int = 12,
        h: int = 8,
        thresholds: list[tuple[float, str]] | None = None,
        description: str = "",
        exemplars: bool = False,
        floor: bool = False,
    ) -> None:
        # A budget is a ceiling (green below, red above) or, with floor=True, a floor (the reverse).
        steps: list[dict[str, Any]] = [{"color": "red" if floor else "green", "value": None}]
        steps += [{"color": color, "value": value} for value, color in thresholds or []]
        custom: dict[str, Any] = {}
        if kind == "timeseries":
            custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
            custom["thresholdsStyle"] = {"mode": "line" if thresholds else "off"}
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": PROM,
            "gridPos": self._place(w, h),
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "custom": custom,
                    "thresholds": {"mode": "absolute", "steps": steps},
                },
                "overrides": [],
            },
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": PROM,
                    "expr": expr,
                    "legendFormat": legend,
                    "exemplar": exemplars,
                    **({"format": "heatmap"} if kind == "heatmap" else {}),
                }
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kind == "heatmap":
            panel["options"] = {
                "calculate": False,
                "yAxis": {"unit": "s"},
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                "exemplars": {"color": "rgba(255,0,255,0.7)"},
                "tooltip": {"show": True, "yHistogram": True},
            }
        if kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
        self.panels.append(panel)

    def json(self, budgets: Budgets) -> dict[str, Any]:
        source = "the budgets file" if budgets.source else "the built-in budgets"
        return {
            "uid": self.uid,
            "title": self.title,
            "description": f"{self.description} Generated by `otelperf generate dashboards` from {source}.",
            "tags": ["otelperf"],
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "graphTooltip": 1,
            "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [
                {
                    "title": "otelperf dashboards",
                    "type": "dashboards",
                    "tags": ["otelperf"],
                    "asDropdown": True,
                }
            ],
            "panels": self.panels,
        }


def variable(name: str, query: str, default: str | None, label: str) -> dict[str, Any]:
    current = {"text": default, "value": default} if default else {"text": "All", "value": "$__all"}
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROM,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": current,
    }


def job_var(budgets: Budgets) -> dict[str, Any]:
    return variable("job", f"label_values({HTTP}_count, job)", budgets.service, "service")


def quantile(q: str, sel: str, by: str = "") -> str:
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({HTTP}_bucket{{{sel}}}[{RI}])))"


def build_provisioning() -> dict[str, dict[str, Any]]:
    """Grafana provisioning files: the two datasources (compose service names) and the dashboards."""
    return {
        "datasources/otelperf.yml": {
            "apiVersion": 1,
            "datasources": [
                {
                    "name": "Prometheus (otelperf)",
                    "uid": PROMETHEUS_UID,
                    "type": "prometheus",
                    "access": "proxy",
                    "url": "http://prometheus:9090",
                    "isDefault": True,
                    "jsonData": {
                        "timeInterval": "5s",
                        # An exemplar's trace_id label opens that trace in the Jaeger datasource.
                        "exemplarTraceIdDestinations": [{"name": "trace_id", "datasourceUid": JAEGER_UID}],
                    },
                },
                {
                    "name": "Jaeger (otelperf)",
                    "uid": JAEGER_UID,
                    "type": "jaeger",
                    "access": "proxy",
                    "url": "http://jaeger:16686",
                },
            ],
        },
        "dashboards/otelperf.yml": {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "otelperf",
                    "folder": "otelperf",
                    "type": "file",
                    "disableDeletion": False,
                    "allowUiUpdates": True,
                    "options": {"path": "/var/lib/grafana/dashboards"},
                }
            ],
        },
    }
