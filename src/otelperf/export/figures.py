"""Span delivery per service, from the ``otel.sdk.*`` metrics the services exported to Prometheus.

Used by ``otelperf doctor`` and ``otelperf stack status``: each instrumented process exports its
own delivery figures (see :mod:`otelperf.export._metrics`); through the collector they reach
Prometheus as ``otel_sdk_exporter_span_exported_total`` and
``otel_sdk_processor_span_processed_total``, labelled ``service_name`` and ``error_type``.

    >>> per_service = delivery_by_service("http://127.0.0.1:9090", timeout=1.0)  # doctest: +SKIP
    >>> per_service["shop"].delivered, per_service["shop"].dropped
    (120433, {'buffer_full': 512})
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otelperf.backends import prometheus

__all__ = ["ServiceDelivery", "delivery_by_service"]

PROMETHEUS_URL = prometheus.PROMETHEUS_URL
# Prometheus names of the two counters; a "_span" unit suffix appears with some translation modes.
_EXPORTED = '{__name__=~"otel_sdk_exporter_span_exported(_span)?_total"}'
_PROCESSED_DROPS = '{__name__=~"otel_sdk_processor_span_processed(_span)?_total", error_type!=""}'
_BY = "service_name, error_type"
# Process restarts reset counters; summing the series' current values is what "so far" means here.
_QUERY_EXPORTED = f"sum by ({_BY}) ({_EXPORTED})"
_QUERY_PROCESSOR_DROPS = f"sum by ({_BY}) ({_PROCESSED_DROPS})"


@dataclass
class ServiceDelivery:
    service: str
    delivered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # error.type -> spans

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def describe(self) -> str:
        drops = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        return f"{self.delivered} delivered, {self.dropped_total} dropped ({drops})"

    def to_dict(self) -> dict[str, object]:
        return {"delivered": self.delivered, "dropped": dict(self.dropped)}


def delivery_by_service(url: str = PROMETHEUS_URL, timeout: float = 1.0) -> dict[str, ServiceDelivery]:
    """Delivered and dropped spans per service.

    Raises :class:`~otelperf.backends.BackendError` (an OSError) when Prometheus cannot be read,
    :class:`~otelperf.backends.PrometheusQueryError` (a ValueError) when it refuses the query.
    """
    client = prometheus.Prometheus(url, timeout)
    out: dict[str, ServiceDelivery] = {}
    for query in (_QUERY_EXPORTED, _QUERY_PROCESSOR_DROPS):
        for sample in client.query(query):
            labels, value = sample.labels, sample.value
            service = labels.get("service_name") or "unknown_service"
            entry = out.setdefault(service, ServiceDelivery(service))
            error = labels.get("error_type")
            if error:
                entry.dropped[error] = entry.dropped.get(error, 0) + int(value)
            else:
                entry.delivered += int(value)
    return out
