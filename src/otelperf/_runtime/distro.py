"""otelperf as an OpenTelemetry distro and configurator, for ``opentelemetry-instrument`` users.

``opentelemetry-instrument python app.py`` then starts otelperf's pipeline and loads every
installed contrib instrumentor *except* those for libraries otelperf instruments itself, so each
operation yields exactly one span. If another distro is installed too, choose this one with
``OTEL_PYTHON_DISTRO=otelperf``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from otelperf._sdk.private_api import ConfiguratorBase as _ConfiguratorBase

logger = logging.getLogger("otelperf")

# contrib entry-point names that would duplicate what otelperf instruments, per otelperf instrumentation.
_DUPLICATES: dict[str, tuple[str, ...]] = {
    "fastapi": ("fastapi", "starlette", "asgi"),
    "sqlalchemy": ("sqlalchemy",),
    "redis": ("redis",),
    "httpx": ("httpx",),
    "requests": ("requests",),
}


def _start() -> None:
    import otelperf

    try:
        otelperf.init()
    except Exception as exc:  # never stop the application from starting
        logger.warning("otelperf could not start, the application runs without it: %r", exc)


class OtelperfDistro(BaseDistro):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", "otelperf")
        _start()

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        from otelperf._runtime import setup as _setup

        runtime = _setup.current()
        owned: set[str] = set()
        if runtime is not None and runtime.enabled:
            for name in runtime.settings.instrument:
                owned.update(_DUPLICATES.get(name, ()))
        if entry_point.name in owned:
            logger.debug(
                "otelperf instruments %s itself; skipping the contrib instrumentor", entry_point.name
            )
            return
        super().load_instrumentor(entry_point, **kwargs)


class OtelperfConfigurator(_ConfiguratorBase):  # type: ignore[misc,valid-type]
    def _configure(self, **kwargs: Any) -> None:
        _start()
