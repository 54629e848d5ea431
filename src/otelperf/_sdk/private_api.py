"""Private OpenTelemetry names otelperf builds on, imported here only, each with its fallback.

- the SDK's configurator base class, which the ``opentelemetry_configurator`` entry point expects;
- the API's synchronous gauge base class (the API exports it under a private name);
- the API's context-manager-and-decorator helper its own ProxyTracer uses.
"""

from __future__ import annotations

try:  # the configurator base class moved between SDK versions
    from opentelemetry.sdk._configuration import _BaseConfigurator as ConfiguratorBase
except ImportError:  # pragma: no cover
    ConfiguratorBase = object  # type: ignore[misc,assignment]

from opentelemetry.metrics import _Gauge as APIGauge

try:
    from opentelemetry.util._decorator import _agnosticcontextmanager as agnostic_contextmanager
except ImportError:  # pragma: no cover - older API
    from contextlib import contextmanager as agnostic_contextmanager  # type: ignore[assignment]

__all__ = ["APIGauge", "ConfiguratorBase", "agnostic_contextmanager"]
