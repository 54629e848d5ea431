"""Which detector classes exist, imported only when enabled."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from otelperf.config import Settings
    from otelperf.detectors._api import Detector

# settings name -> (module, class). Each class is built as cls(settings, meter).
DETECTORS: dict[str, tuple[str, str]] = {
    "slow_query": ("otelperf.detectors.slow_query", "SlowQueryDetector"),
    "n_plus_one": ("otelperf.detectors.n_plus_one", "NPlusOneDetector"),
    "latency_budget": ("otelperf.detectors.budget", "LatencyBudgetDetector"),
    "cache": ("otelperf.detectors.cache", "CacheDetector"),
    "sequential_awaits": ("otelperf.detectors.sequential_awaits", "SequentialAwaitsDetector"),
}


def build_detectors(settings: Settings, meter: Meter | None) -> list[Detector]:
    built: list[Any] = []
    for name in settings.detectors:
        module_name, class_name = DETECTORS[name]
        cls = getattr(importlib.import_module(module_name), class_name)
        built.append(cls(settings, meter))
    return built
