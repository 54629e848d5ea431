"""The report's inputs besides the backends: the budgets file and a baseline file.

A baseline is either a file ``otelperf baseline record`` wrote (``"format": "otelperf-baseline/1"``,
read with its own loader) or a simple JSON written by hand::

    {"routes": {"GET /orders": {"p50_ms": 12.0, "p95_ms": 40.0, "p99_ms": 80.0,
                                "rps": 25.0, "error_rate": 0.0}}}

Every number is optional; ``routes`` may also be a list of objects with a ``"route"`` key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otelperf.budgets import DEFAULT_ROUTE, Budgets
from otelperf.report.html.model import BaselineRoute, Budget

_BASELINE_KEYS = ("p50_ms", "p95_ms", "p99_ms", "rps", "error_rate")


class BaselineError(ValueError):
    pass


def budget_lookup(budgets: Budgets) -> Callable[[str], Budget | None]:
    """``route -> Budget``; the ``"*"`` floor is the whole service's, so it is not a route's floor."""

    def lookup(route: str) -> Budget | None:
        found = budgets.for_route(route)
        min_rps = None if found.route == DEFAULT_ROUTE else found.min_rps
        return Budget(found.p95_ms, found.p99_ms, found.error_rate, min_rps)

    return lookup


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BaselineError(f"{where}: expected a number, got {value!r}")
    return float(value)


def parse_baseline(document: Any, source: str = "<baseline>") -> dict[str, BaselineRoute]:
    if not isinstance(document, dict) or "routes" not in document:
        raise BaselineError(f'{source}: expected a JSON object with a "routes" key')
    routes = document["routes"]
    if isinstance(routes, list):
        try:
            routes = {str(item["route"]): item for item in routes}
        except (TypeError, KeyError):
            raise BaselineError(f'{source}: "routes" as a list needs objects with a "route" key') from None
    if not isinstance(routes, dict):
        raise BaselineError(f'{source}: "routes" must be an object or a list')
    out = {}
    for route, values in routes.items():
        if not isinstance(values, dict):
            raise BaselineError(f"{source}: routes.{route}: expected an object")
        numbers = {key: _number(values.get(key), f"{source}: routes.{route}.{key}") for key in _BASELINE_KEYS}
        out[str(route)] = BaselineRoute(**numbers)
    return out


def load_baseline(path: str | Path) -> dict[str, BaselineRoute]:
    """Read a baseline file; BaselineError says what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BaselineError(f"{path}: not JSON: {exc}") from None
    if isinstance(document, dict) and "format" in document:
        from otelperf.baseline.model import Baseline
        from otelperf.baseline.model import BaselineError as RecordedError

        try:
            recorded = Baseline.from_json(text, str(path))
        except RecordedError as exc:
            raise BaselineError(str(exc)) from None
        document = {"routes": recorded.routes}
    return parse_baseline(document, str(path))
