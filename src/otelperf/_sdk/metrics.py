"""The SDK's metric internals otelperf relies on: adding otelperf's histograms to a reader's
collections, the exemplar type, the histogram class readers key their preferences by, and a
forked child's readers.

Each degrades: without the collect hook otelperf's histograms are not merged (``hook_collect``
returns False and the caller falls back to the SDK's histograms); without the reader list a forked
child leaves the parent's readers alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, MetricsData

try:
    from opentelemetry.sdk.metrics._internal.exemplar import Exemplar
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram as SDKHistogramImpl
except ImportError:  # pragma: no cover - an SDK that moved them; exemplars are then left out
    Exemplar = None  # type: ignore[assignment,misc]
    SDKHistogramImpl = None  # type: ignore[assignment,misc]

__all__ = ["Exemplar", "SDKHistogramImpl", "abandon_readers", "hook_collect"]


def hook_collect(reader: MetricReader, merge: Callable[[MetricsData | None], MetricsData | None]) -> bool:
    """Make every collection of ``reader`` pass through ``merge``; False when this SDK's reader
    offers no hook (then nothing changes)."""
    original: Callable[..., MetricsData | None] | None = getattr(reader, "_collect", None)
    setter = getattr(reader, "_set_collect_callback", None)
    if original is None or not callable(setter):
        return False

    def collect(reader_: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        return merge(original(reader_, timeout_millis=timeout_millis))

    setter(collect)
    return True


def abandon_readers(meter_provider: Any, exporter: MetricExporter) -> int:
    """In a forked child: stop the periodic readers inherited from the parent and point them at
    ``exporter`` (their thread restarts by the SDK's own fork hook and would send the parent's
    cumulative metrics). Returns how many readers were abandoned."""
    readers: Any = getattr(meter_provider, "_metric_readers", None)  # the SDK's own list (1.30 to 1.45)
    if readers is None:
        readers = getattr(getattr(meter_provider, "_sdk_config", None), "metric_readers", ())
    abandoned = 0
    for reader in readers:
        if hasattr(reader, "_exporter") and hasattr(reader, "_shutdown_event"):
            reader._exporter = exporter
            reader._shutdown_event.set()
            abandoned += 1
    return abandoned
