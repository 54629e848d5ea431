"""What ``Stack`` answers: the status of each component and of the whole stack, and what ``up`` did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otelperf.backends import JAEGER_URL, PROMETHEUS_URL
from otelperf.export.figures import ServiceDelivery
from otelperf.stack import components as comp
from otelperf.stack.metrics import SpanFlow

URLS = {
    "Jaeger UI/API": JAEGER_URL,
    "Prometheus": PROMETHEUS_URL,
    "OTLP/gRPC": "http://127.0.0.1:4317",
    "OTLP/HTTP": "http://127.0.0.1:4318",
}


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    title: str
    running: bool
    healthy: bool
    pid: int | None
    ports: tuple[comp.Port, ...]
    health_url: str
    log: Path
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "running": self.running,
            "healthy": self.healthy,
            "pid": self.pid,
            "ports": [{"port": p.number, "label": p.label} for p in self.ports],
            "health_url": self.health_url,
            "log": str(self.log),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class StackStatus:
    components: list[ComponentStatus]
    telemetry: SpanFlow | None
    telemetry_error: str | None = None
    # Span delivery per service, from the otel.sdk.* metrics in Prometheus (None: not asked).
    delivery: dict[str, ServiceDelivery] | None = None
    delivery_error: str | None = None

    @property
    def all_up(self) -> bool:
        return all(c.running and c.healthy for c in self.components)

    def to_dict(self) -> dict[str, Any]:
        return {
            "all_up": self.all_up,
            "components": [c.to_dict() for c in self.components],
            "telemetry": self.telemetry.to_dict() if self.telemetry else None,
            "telemetry_error": self.telemetry_error,
            "delivery": None if self.delivery is None else {k: v.to_dict() for k, v in self.delivery.items()},
            "delivery_error": self.delivery_error,
            "urls": URLS,
        }


@dataclass
class UpResult:
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    urls: dict[str, str] = field(default_factory=lambda: dict(URLS))
