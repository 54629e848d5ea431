"""Run every Grafana panel's PromQL against a real Prometheus (Grafana itself cannot run here).

``check_dashboard_queries(prom_url, require_data)`` substitutes the template variables (``$job`` and
friends -> ``.*`` unless ``variables`` pins them, ``$__rate_interval`` -> ``1m``), sends each query
to ``/api/v1/query`` and returns the problems: a query Prometheus rejects, or (with
``require_data``) one that returns no series. Importable so the load-test run can call it with
``require_data=True`` after traffic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otelperf.backends import Prometheus, PrometheusQueryError

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
_GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "1h"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str  # with the variables substituted

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.expr}"


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Grafana's built-ins, then dashboard variables: ``variables[name]`` (a regex) or ``.*``."""
    for name, value in _GRAFANA_VARS.items():
        expr = expr.replace(name, value)
    pinned = variables or {}
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
        lambda m: pinned.get(m.group(1), ".*").replace("\\", "\\\\"),
        expr,
    )


def panel_queries(
    directory: Path = DASHBOARDS, variables: Mapping[str, str] | None = None
) -> list[PanelQuery]:
    out = []
    for path in sorted(directory.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append(
                        PanelQuery(path.stem, panel.get("title", "?"), substitute(target["expr"], variables))
                    )
    return out


def check_dashboard_queries(
    prom_url: str,
    require_data: bool,
    directory: Path = DASHBOARDS,
    variables: Mapping[str, str] | None = None,
) -> list[str]:
    """Problems with the dashboards' queries (empty list: all fine).

    ``variables`` pins dashboard variables (``{"job": "my-service"}``, values are regexes), so a
    test can ask for data of its own run rather than of anything Prometheus holds.
    """
    queries = panel_queries(directory, variables)
    if not queries:
        return [f"no panel queries found in {directory}"]
    prometheus = Prometheus(prom_url)
    problems = []
    for q in queries:
        try:
            result = prometheus.query(q.expr)
        except PrometheusQueryError as exc:  # the query's own fault; an unreachable Prometheus raises
            problems.append(f"{q}: {exc}")
            continue
        if require_data and not result:
            problems.append(f"{q}: no data")
    return problems
