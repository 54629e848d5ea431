"""The shortcut around ``propagate.extract`` for requests without trace headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otelperf.instrumentation import _asgi_request
from otelperf.instrumentation._asgi_request import extract_parent
from otelperf.instrumentation.asgi import _GETTER

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PLAIN = [(b"host", b"shop.local"), (b"user-agent", b"curl/8"), (b"accept", b"*/*")]
HEADER_SETS = {
    "none": PLAIN,
    "traceparent": [*PLAIN, (b"traceparent", TRACEPARENT)],
    "tracestate only": [*PLAIN, (b"tracestate", b"vendor=1")],
    "baggage only": [*PLAIN, (b"baggage", b"tenant=acme")],
    "both": [(b"traceparent", TRACEPARENT), (b"baggage", b"tenant=acme"), *PLAIN],
}


def _counting(propagators: list[TextMapPropagator]) -> tuple[CompositePropagator, list[int]]:
    """The SDK's own CompositePropagator (its type is what the shortcut checks), counting calls."""
    propagator = CompositePropagator(propagators)
    calls = [0]
    real = propagator.extract

    def extract(*args: Any, **kwargs: Any) -> Context:
        calls[0] += 1
        return real(*args, **kwargs)

    propagator.extract = extract  # type: ignore[method-assign]
    return propagator, calls


class _HeaderX(TextMapPropagator):
    """A propagator reading a header the default one does not: must always be asked."""

    def extract(self, carrier: Any, context: Context | None = None, getter: Any = None) -> Context:
        found = getter.get(carrier, "x-tenant") if getter else None
        return (
            baggage.set_baggage("tenant", found[0], context or Context()) if found else (context or Context())
        )

    def inject(self, *args: Any, **kwargs: Any) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return {"x-tenant"}


@pytest.fixture
def global_propagator() -> Iterator[None]:
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)
    _asgi_request._w3c_only = None


def _same(a: Context, b: Context) -> bool:
    return trace.get_current_span(a).get_span_context() == trace.get_current_span(
        b
    ).get_span_context() and baggage.get_all(a) == baggage.get_all(b)


@pytest.mark.parametrize("headers", sorted(HEADER_SETS))
def test_the_default_propagator_gives_what_extract_gives(headers: str, global_propagator: None) -> None:
    propagator, calls = _counting([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    propagate.set_global_textmap(propagator)
    carrier = HEADER_SETS[headers]
    ours = extract_parent(carrier, _GETTER)
    asked = calls[0]
    assert _same(ours, propagator.extract(carrier, getter=_GETTER))
    # Asked only when one of its headers is there.
    assert asked == (0 if headers == "none" else 1)


def test_with_no_trace_headers_the_result_is_an_empty_context(global_propagator: None) -> None:
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    assert extract_parent(PLAIN, _GETTER) == Context()


@pytest.mark.parametrize(
    "propagators",
    [
        [
            W3CBaggagePropagator(),
            TraceContextTextMapPropagator(),
        ],  # baggage first starts from the current context
        [TraceContextTextMapPropagator(), _HeaderX()],
        [_HeaderX()],
    ],
    ids=["baggage-first", "with-a-custom-header", "custom-only"],
)
def test_any_other_propagator_is_always_asked(
    propagators: list[TextMapPropagator], global_propagator: None
) -> None:
    propagator, calls = _counting(propagators)
    propagate.set_global_textmap(propagator)
    carrier = [*PLAIN, (b"x-tenant", b"acme")]
    ours = extract_parent(carrier, _GETTER)
    assert calls[0] == 1
    assert _same(ours, propagator.extract(carrier, getter=_GETTER))
