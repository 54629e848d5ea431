"""The C-speed SpanContext accessors must read exactly what the properties read."""

from __future__ import annotations

import random

import pytest
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext, TraceFlags, TraceState

from otelperf._sdk import span_context as _spanctx

pytestmark = pytest.mark.fast_paths  # see tests/conftest.py


def _contexts() -> list[SpanContext]:
    rng = random.Random(3)
    out = [INVALID_SPAN_CONTEXT]
    for _ in range(200):
        out.append(
            SpanContext(
                rng.choice([0, rng.getrandbits(128)]),
                rng.choice([0, rng.getrandbits(64)]),
                is_remote=rng.random() < 0.5,
                trace_flags=TraceFlags(rng.randrange(4)),
                trace_state=rng.choice([None, TraceState([("k", str(rng.randrange(9)))])]),
            )
        )
    return out


def test_the_installed_api_keeps_the_tuple_layout() -> None:
    # If this fails, otelperf still works (the accessors fall back to the properties) but the
    # hot paths lose the shortcut: look at how SpanContext.__new__ builds its tuple now.
    assert _spanctx.uses_tuple_layout


@pytest.mark.parametrize(
    "name", ["trace_id", "span_id", "is_remote", "trace_flags", "trace_state", "is_valid"]
)
def test_each_accessor_reads_what_the_property_reads(name: str) -> None:
    accessor = getattr(_spanctx, name)
    for ctx in _contexts():
        assert accessor(ctx) == getattr(ctx, name)
    sampled = [ctx for ctx in _contexts() if _spanctx.trace_flags(ctx) & 0x01]
    assert sampled and all(ctx.trace_flags.sampled for ctx in sampled)


def test_a_changed_layout_falls_back_to_the_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    class Reordered(tuple):  # type: ignore[type-arg]
        """A SpanContext stand-in whose tuple order is not the API's."""

        def __new__(
            cls, trace_id: int, span_id: int, is_remote: bool, trace_flags: object, trace_state: object
        ):  # type: ignore[no-untyped-def]
            self = tuple.__new__(cls, (span_id, trace_id, trace_flags, is_remote, trace_state, True))
            return self

        trace_id = property(lambda self: self[1])
        span_id = property(lambda self: self[0])
        is_remote = property(lambda self: self[3])
        trace_flags = property(lambda self: self[2])
        trace_state = property(lambda self: self[4])
        is_valid = property(lambda self: self[5])

    monkeypatch.setattr(_spanctx, "SpanContext", Reordered)
    assert not _spanctx._tuple_layout_holds()


def test_readable_span_fields_are_where_the_fast_readers_look_with_this_sdk() -> None:
    """The encoder and the detector pipeline read a ReadableSpan's fields behind its properties;
    with the installed SDK that must be possible (else they silently fall back to the properties)."""
    from opentelemetry.sdk.trace import ReadableSpan

    assert _spanctx.readable_span_fields
    parent = SpanContext(1, 2, is_remote=False)
    span = ReadableSpan("s", context=parent, parent=parent, start_time=5, end_time=6)
    assert (span._context, span._parent, span._start_time, span._end_time) == (
        span.context,
        span.parent,
        span.start_time,
        span.end_time,
    )
