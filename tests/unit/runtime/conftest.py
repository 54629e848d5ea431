"""Fixtures for lifecycle tests: the OpenTelemetry API's globals reset, a loopback OTLP sink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace

import otelperf
from otelperf._runtime import setup as _setup
from otelperf.testing import OTLPSink


def reset_api_globals() -> None:
    """Put the OpenTelemetry API's set-once globals back to "never set" (test-only)."""
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    trace._PROXY_TRACER_PROVIDER = trace.ProxyTracerProvider()
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    metrics_internal._PROXY_METER_PROVIDER = metrics_internal._ProxyMeterProvider()


@pytest.fixture
def fresh_globals() -> Iterator[None]:
    assert _setup.current() is None
    reset_api_globals()
    try:
        yield
    finally:
        otelperf.shutdown(timeout=5)
        reset_api_globals()


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    with OTLPSink() as s:
        yield s
