"""otelperf: find performance bottlenecks in Python web services with OpenTelemetry.

>>> import otelperf
>>> otelperf.init(service_name="shop")  # doctest: +SKIP

From then on HTTP (FastAPI/ASGI, httpx, requests), database (SQLAlchemy) and cache (Redis,
in-process caches) work becomes spans and metrics, exported over OTLP.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from otelperf._version import __version__

if TYPE_CHECKING:
    from otelperf._runtime.setup import Runtime
    from otelperf.config import ConfigError, Settings
    from otelperf.detectors._api import Finding
    from otelperf.detectors.expect import Expect

# The public classes are imported on first use: ``import otelperf`` (which every submodule import
# runs first, the pytest plugin's included) would otherwise load the whole SDK pipeline, ~0.8 G
# instructions (~0.3 s) of start-up in every pytest session of a project that has otelperf
# installed, whether or not it runs otelperf (benchmarks/testsuite.py, issue 13).
_LAZY = {
    "Runtime": "otelperf._runtime.setup",
    "ConfigError": "otelperf.config",
    "Settings": "otelperf.config",
    "Finding": "otelperf.detectors._api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otelperf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ConfigError",
    "Finding",
    "Runtime",
    "Settings",
    "__version__",
    "expect",
    "findings",
    "init",
    "instrument_cache",
    "shutdown",
]


def init(**settings: Any) -> Runtime:
    """Start otelperf: build the OTLP pipeline and instrument every supported library found.

    Every setting can be given here, as ``OTELPERF_<NAME>`` or as its standard ``OTEL_*``
    variable (keyword > ``OTELPERF_*`` > ``OTEL_*`` > default). Safe to call more than once and
    from several threads: later calls return the running pipeline.

    >>> otelperf.init(service_name="shop", environment="prod")  # doctest: +SKIP
    """
    from otelperf._runtime import setup as _setup

    return _setup.init(**settings)


def findings() -> list[Finding]:
    """What otelperf's detectors found recently in this process (at most the last 1000), oldest first.

    >>> for f in otelperf.findings():  # doctest: +SKIP
    ...     print(f.summary())
    n_plus_one [warning] GET /orders: SELECT order_items WHERE order_id = ? x12 (84.0 ms) - ...
    """
    from otelperf._runtime import setup as _setup

    runtime = _setup.current()
    if runtime is None or runtime.findings is None:
        return []
    return runtime.findings.recent()


def expect(
    detector: str, *, reason: str = "", fingerprint: str | None = None, statement: str | None = None
) -> Expect:
    """Mark findings of ``detector`` ("n_plus_one", "slow_query"...) made inside as expected: a
    ``with`` block or a decorator (sync or async). Narrow with ``fingerprint=`` or ``statement=``
    (a substring of the sanitized statement). Expected findings are counted apart and neither
    alert nor fail tests (docs/detectors.md#expected-findings).

    >>> with otelperf.expect("n_plus_one", reason="admin page, 20 rows at most"):  # doctest: +SKIP
    ...     rows = [order.items for order in orders]
    """
    from otelperf.detectors.expect import expect as _expect

    return _expect(detector, reason=reason, fingerprint=fingerprint, statement=statement)


def shutdown(timeout: float | None = None) -> bool:
    """Flush what is buffered and stop exporting. Returns within ``timeout`` seconds (default 5)
    even when the collector does not answer; True when everything was flushed in time."""
    from otelperf._runtime import setup as _setup

    return _setup.shutdown(timeout)


def instrument_cache(cache: Any = None, *, name: str | None = None) -> Any:
    """Make an in-process cache's lookups visible as spans with ``otelperf.cache.hit``.

    Works on a dict-like cache (``dict``, ``cachetools.TTLCache``...) and on a function
    decorated with ``functools.lru_cache``/``cache``; also usable as a decorator::

        prices = otelperf.instrument_cache(cachetools.TTLCache(1024, 60), name="prices")

        @otelperf.instrument_cache(name="user")
        @functools.lru_cache(maxsize=1024)
        def load_user(user_id): ...
    """
    from otelperf.instrumentation.cache import instrument_cache as _instrument_cache

    return _instrument_cache(cache, name=name)
