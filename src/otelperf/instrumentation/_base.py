"""What every instrumentation module provides, and the table of supported library versions."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.trace import Tracer

    from otelperf.config import Settings

# name -> (import name, distribution name, supported versions, pip extra). Data, in one place.
SUPPORTED: dict[str, tuple[str, str, str, str]] = {
    "fastapi": ("starlette", "starlette", ">=0.27", "fastapi"),
    "sqlalchemy": ("sqlalchemy", "sqlalchemy", ">=2.0,<2.2", "sqlalchemy"),
    "sqlalchemy_pool": ("sqlalchemy", "sqlalchemy", ">=2.0,<2.2", "sqlalchemy"),
    "redis": ("redis", "redis", ">=4.5", "redis"),
    "httpx": ("httpx", "httpx", ">=0.24", "httpx"),
    "requests": ("requests", "requests", ">=2.28", "requests"),
}

# Module implementing each instrumentation, imported only when needed.
MODULES: dict[str, str] = {
    "fastapi": "otelperf.instrumentation.asgi",
    "sqlalchemy": "otelperf.instrumentation.sqlalchemy",
    "sqlalchemy_pool": "otelperf.instrumentation.sqlalchemy_pool",  # pool-use gauges
    "redis": "otelperf.instrumentation.redis",
    "httpx": "otelperf.instrumentation.httpx",
    "requests": "otelperf.instrumentation.requests",
}

Status = Literal["instrumented", "not-installed", "unsupported-version", "failed", "disabled"]


@dataclass(frozen=True)
class InstrumentationResult:
    """Whether one library was instrumented, and if not, why (a typed "did not enable")."""

    name: str
    status: Status
    version: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class InstrumentContext:
    """What an instrumentor gets: providers are passed in, never taken from hidden globals."""

    tracer: Tracer
    meter: Meter
    settings: Settings


class Instrumentor(ABC):
    """Patches one library. ``instrument`` and ``uninstrument`` are each idempotent."""

    name: str

    @abstractmethod
    def instrument(self, ctx: InstrumentContext) -> None: ...

    @abstractmethod
    def uninstrument(self) -> None: ...


def installed_version(name: str) -> str | None:
    import_name, dist, _, _ = SUPPORTED[name]
    if importlib.util.find_spec(import_name) is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def check_supported(name: str) -> InstrumentationResult | None:
    """Return a "did not enable" result when ``name`` cannot be instrumented here, else None."""
    _, dist, spec, extra = SUPPORTED[name]
    version = installed_version(name)
    if version is None:
        return InstrumentationResult(
            name, "not-installed", None, f"{dist} is not installed (pip install 'otelperf[{extra}]')"
        )
    try:
        ok = Version(version) in SpecifierSet(spec, prereleases=True)
    except InvalidVersion:
        ok = True  # an unparseable local build: try it rather than refuse
    if not ok:
        return InstrumentationResult(
            name, "unsupported-version", version, f"{dist} {version} is not in {spec}"
        )
    return None


def load_instrumentor(name: str) -> Instrumentor:
    module = importlib.import_module(MODULES[name])
    instrumentor: Instrumentor = module.INSTRUMENTOR
    return instrumentor
