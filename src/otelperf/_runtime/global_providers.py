"""The global TracerProvider and MeterProvider otelperf installs: they forward to the running runtime.

The OpenTelemetry API lets the global providers be set once per process. Setting the first
runtime's SDK providers there would tie ``trace.get_tracer(...)`` to that runtime for good: after
``init(); shutdown(); init()`` (or in a forked child, which starts a runtime of its own) the
application's spans would go to a provider that was shut down. So otelperf sets, once, a small
provider of its own whose tracers, meters and instruments look up the *current* runtime's
providers (no-ops while none runs), like the API's own proxy providers do before a real one is set.

    >>> tracer = trace.get_tracer("shop")     # doctest: +SKIP
    >>> otelperf.init(); otelperf.shutdown(); otelperf.init()  # doctest: +SKIP
    >>> tracer.start_span("still exported").end()  # doctest: +SKIP

Each tracer/meter/instrument caches what it forwards to together with the generation it was made
for: one integer comparison per call while the runtime stays the same. Observable instruments are
made again eagerly on every switch, since nobody calls them: the SDK calls their callbacks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from opentelemetry import metrics, trace
from opentelemetry.util.types import Attributes

from otelperf._sdk.private_api import APIGauge as _ApiGauge
from otelperf._sdk.private_api import agnostic_contextmanager as _agnosticcontextmanager

__all__ = ["METER_PROVIDER", "TRACER_PROVIDER", "activate", "deactivate", "install_globals"]

logger = logging.getLogger("otelperf")


class _Target(NamedTuple):
    generation: int
    tracer_provider: trace.TracerProvider | None
    meter_provider: metrics.MeterProvider | None


# Replaced whole (one reference assignment), so readers on other threads never see half of a switch.
_target = _Target(0, None, None)
_switch_lock = threading.Lock()
_NOOP_TRACER = trace.NoOpTracer()
_NOOP_METER = metrics.NoOpMeter("otelperf-noop")
# Observable instruments the application created through the global provider; the SDK keeps its
# instruments alive, so these are kept too, bounded: an app creates a handful.
_observables: list[_ForwardingInstrument] = []
_MAX_OBSERVABLES = 10_000


def activate(tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider) -> None:
    """Forward the global providers to these (the runtime that just started)."""
    global _target
    with _switch_lock:
        _target = _Target(_target.generation + 1, tracer_provider, meter_provider)
        observables = list(_observables)
    for instrument in observables:
        try:
            instrument._current()
        except Exception:  # a callback the app registered is its own; never stop a start for it
            logger.debug("otelperf could not re-register an observable instrument", exc_info=True)


def deactivate(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Forward to nothing (no-ops). With ``tracer_provider``: only if that is still the target, so a
    runtime being stopped late cannot switch off its successor."""
    global _target
    with _switch_lock:
        if tracer_provider is not None and _target.tracer_provider is not tracer_provider:
            return
        _target = _Target(_target.generation + 1, None, None)


def reset_after_fork() -> None:
    """A forked child: a lock another thread of the parent held stays held in the child."""
    global _switch_lock
    _switch_lock = threading.Lock()


def current_tracer_provider() -> trace.TracerProvider | None:
    return _target.tracer_provider


class ForwardingTracerProvider(trace.TracerProvider):
    """Hands out tracers that forward to the running otelperf runtime's TracerProvider."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _ForwardingTracer(
            (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        )


class _ForwardingTracer(trace.Tracer):
    def __init__(self, args: tuple[str, str | None, str | None, Attributes | None]) -> None:
        self._args = args
        self._cached: tuple[int, trace.Tracer] = (-1, _NOOP_TRACER)

    def _current(self) -> trace.Tracer:
        generation, tracer = self._cached
        target = _target
        if generation != target.generation:
            provider = target.tracer_provider
            tracer = provider.get_tracer(*self._args) if provider is not None else _NOOP_TRACER
            self._cached = (target.generation, tracer)
        return tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:  # type: ignore[override]
        return self._current().start_span(*args, **kwargs)

    @_agnosticcontextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:  # type: ignore[override]
        # Resolved on entry, not when the context manager is made: a function decorated with
        # @tracer.start_as_current_span(...) before init() reaches the runtime running when it is called.
        with self._current().start_as_current_span(*args, **kwargs) as span:
            yield span


class ForwardingMeterProvider(metrics.MeterProvider):
    """Hands out meters whose instruments forward to the running otelperf runtime's MeterProvider."""

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> metrics.Meter:
        return _ForwardingMeter(name, version, schema_url, attributes)


class _ForwardingMeter(metrics.Meter):
    def __init__(
        self, name: str, version: str | None, schema_url: str | None, attributes: Attributes | None
    ) -> None:
        super().__init__(name, version=version, schema_url=schema_url)
        self._attributes = attributes
        self._cached: tuple[int, metrics.Meter] = (-1, _NOOP_METER)

    def _current(self) -> metrics.Meter:
        generation, meter = self._cached
        target = _target
        if generation != target.generation:
            provider = target.meter_provider
            if provider is None:
                meter = _NOOP_METER
            elif self._attributes is not None:
                meter = provider.get_meter(self.name, self.version, self.schema_url, self._attributes)
            else:
                meter = provider.get_meter(self.name, self.version, self.schema_url)
            self._cached = (target.generation, meter)
        return meter

    def create_counter(self, name: str, unit: str = "", description: str = "") -> metrics.Counter:
        return _Counter(self, "create_counter", (name, unit, description), {})

    def create_up_down_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> metrics.UpDownCounter:
        return _UpDownCounter(self, "create_up_down_counter", (name, unit, description), {})

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> metrics.Histogram:
        kwargs: dict[str, Any] = {}
        if explicit_bucket_boundaries_advisory is not None:
            kwargs["explicit_bucket_boundaries_advisory"] = explicit_bucket_boundaries_advisory
        return _Histogram(self, "create_histogram", (name, unit, description), kwargs)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> _ApiGauge:  # type: ignore[override]
        return _Gauge(self, "create_gauge", (name, unit, description), {})

    def create_observable_counter(
        self,
        name: str,
        callbacks: Sequence[metrics.CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> metrics.ObservableCounter:
        return _observable(
            _ObservableCounter(self, "create_observable_counter", (name, callbacks, unit, description), {})
        )

    def create_observable_gauge(
        self,
        name: str,
        callbacks: Sequence[metrics.CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> metrics.ObservableGauge:
        return _observable(
            _ObservableGauge(self, "create_observable_gauge", (name, callbacks, unit, description), {})
        )

    def create_observable_up_down_counter(
        self,
        name: str,
        callbacks: Sequence[metrics.CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> metrics.ObservableUpDownCounter:
        return _observable(
            _ObservableUpDownCounter(
                self, "create_observable_up_down_counter", (name, callbacks, unit, description), {}
            )
        )


_Observable = TypeVar("_Observable", bound="_ForwardingInstrument")


class _ForwardingInstrument:
    """Makes the real instrument on the current meter, once per runtime, when first used."""

    def __init__(
        self, meter: _ForwardingMeter, factory: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._meter = meter
        self._factory = factory
        self._args = args
        self._kwargs = kwargs
        self._cached: tuple[int, Any] = (-1, None)

    def _current(self) -> Any:
        generation, instrument = self._cached
        target = _target
        if generation != target.generation:
            instrument = getattr(self._meter._current(), self._factory)(*self._args, **self._kwargs)
            self._cached = (target.generation, instrument)
        return instrument


def _observable(instrument: _Observable) -> _Observable:
    with _switch_lock:
        if len(_observables) < _MAX_OBSERVABLES:
            _observables.append(instrument)
    instrument._current()  # registers the callbacks with the running runtime, if any
    return instrument


class _Counter(_ForwardingInstrument, metrics.Counter):
    def add(self, amount: int | float, attributes: Attributes = None, context: Any = None) -> None:
        self._current().add(amount, attributes, context)


class _UpDownCounter(_ForwardingInstrument, metrics.UpDownCounter):
    def add(self, amount: int | float, attributes: Attributes = None, context: Any = None) -> None:
        self._current().add(amount, attributes, context)


class _Histogram(_ForwardingInstrument, metrics.Histogram):
    def record(self, amount: int | float, attributes: Attributes = None, context: Any = None) -> None:
        self._current().record(amount, attributes, context)


class _Gauge(_ForwardingInstrument, _ApiGauge):
    def set(self, amount: int | float, attributes: Attributes = None, context: Any = None) -> None:
        self._current().set(amount, attributes, context)


class _ObservableCounter(_ForwardingInstrument, metrics.ObservableCounter):
    pass


class _ObservableGauge(_ForwardingInstrument, metrics.ObservableGauge):
    pass


class _ObservableUpDownCounter(_ForwardingInstrument, metrics.ObservableUpDownCounter):
    pass


TRACER_PROVIDER = ForwardingTracerProvider()
METER_PROVIDER = ForwardingMeterProvider()


def install_globals() -> None:
    """Make the forwarding providers the API's globals, unless someone else set providers first."""
    current_tracer_provider = trace.get_tracer_provider()
    if isinstance(current_tracer_provider, trace.ProxyTracerProvider):
        trace.set_tracer_provider(TRACER_PROVIDER)
    elif current_tracer_provider is not TRACER_PROVIDER:
        logger.info("a global TracerProvider was already set; otelperf's spans use otelperf's own provider")
    if type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
        metrics.set_meter_provider(METER_PROVIDER)
