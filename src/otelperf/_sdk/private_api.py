"""Private OpenTelemetry names otelperf builds on, imported here only, each with its fallback.

- the SDK's configurator base class, which the ``opentelemetry_configurator`` entry point expects;
- the API's synchronous gauge base class (the API exports it under a private name);
- the API's context-manager-and-decorator helper its own ProxyTracer uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import _Gauge as APIGauge

if TYPE_CHECKING:
    from opentelemetry.sdk._configuration import _BaseConfigurator as ConfiguratorBase

try:
    from opentelemetry.util._decorator import _agnosticcontextmanager as agnostic_contextmanager
except ImportError:  # pragma: no cover - older API
    from contextlib import contextmanager as agnostic_contextmanager  # type: ignore[assignment]

__all__ = ["APIGauge", "ConfiguratorBase", "agnostic_contextmanager"]


def __getattr__(name: str) -> Any:
    # The configurator base class on first use (PEP 562): only opentelemetry-instrument's loading of
    # otelperf's configurator needs it, and the SDK's _configuration module (logging.config, the
    # entry-point machinery) costs every init() ~37M instructions otherwise.
    if name != "ConfiguratorBase":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base: Any = object
    try:  # the configurator base class moved between SDK versions
        from opentelemetry.sdk._configuration import _BaseConfigurator

        base = _BaseConfigurator
    except ImportError:  # pragma: no cover
        pass
    globals()[name] = base
    return base
