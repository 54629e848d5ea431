"""Whether otelperf may build a tracer's spans itself, decided in one place and re-checked cheaply.

otelperf writes leaf spans (statements, commands, lookups) and request spans without the SDK's
``start_span``/``end`` (see :mod:`otelperf._sdk.leaf`). That is only equivalent when nothing the
provider was given needs the SDK's path. The span paths are off, and every span goes through
``Tracer.start_span`` and ``Span.end``, when any of these holds:

- ``OTELPERF_SDK_FAST_PATHS=0`` (or ``init(sdk_fast_paths=False)``);
- the tracer is not the SDK's, or its processors are not the SDK's synchronous multi-processor;
- a span processor other than otelperf's own, or the SDK's exporting ones, implements ``on_start``
  or ``_on_ending`` (a processor that pairs ``on_start`` with ``on_end``, as Sentry's does, must see
  both for every span);
- ``SpanLimits`` are not the SDK's defaults (``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` and friends):
  the SDK's path applies them to every attribute;
- a tracer configurator disabled the tracer;
- the id generator is not the SDK's ``RandomIdGenerator``;
- the sampler is not one otelperf knows (:mod:`otelperf._sdk.sampling`) or is ALWAYS_OFF;
- the SDK's own span metrics are on (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``).

Processors and the tracer configuration can change after init; :meth:`SpanPathGate.open` notices
(the SDK replaces its processor tuple and the tracer's config object on change) and decides again.
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace import Tracer as SDKTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from otelperf._sdk.sampling import plain_rule

__all__ = ["ENV_VAR", "SpanPathGate", "env_forced_off", "force_off", "forced_off", "span_path_verdict"]

ENV_VAR = "OTELPERF_SDK_FAST_PATHS"
_OFF_WORDS = frozenset({"0", "false", "off", "no"})


def env_forced_off() -> bool:
    """``OTELPERF_SDK_FAST_PATHS=0``: read once at import by the import-time paths too."""
    return os.environ.get(ENV_VAR, "").strip().lower() in _OFF_WORDS


_forced_off = env_forced_off()


def force_off(off: bool) -> None:
    """Set by init from the ``sdk_fast_paths`` setting (kwarg or ``OTELPERF_SDK_FAST_PATHS``)."""
    global _forced_off
    _forced_off = off


def forced_off() -> bool:
    return _forced_off


# The SDK's limits when nothing configures them; any other value is applied by its path only.
_DEFAULT_LIMITS = {
    "max_attributes": 128,
    "max_events": 128,
    "max_links": 128,
    "max_span_attributes": 128,
    "max_event_attributes": 128,
    "max_link_attributes": 128,
    "max_attribute_length": None,
    "max_span_attribute_length": None,
}
# Exact types whose on_start/_on_ending do nothing (read in the SDK's source, 1.30 to 1.45).
_SDK_END_ONLY: frozenset[type] = frozenset({BatchSpanProcessor, SimpleSpanProcessor})


def _name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def processor_reason(processor: object) -> str | None:
    """Why ``processor`` needs the SDK's path, or None when it only looks at ended spans."""
    declared = getattr(processor, "otelperf_end_only", None)
    if callable(declared):  # otelperf's own processors say (a wrapper asks what it wraps)
        return None if declared() else f"{_name(processor)} wraps a processor that implements on_start"
    cls = type(processor)
    if cls in _SDK_END_ONLY:
        return None
    if getattr(cls, "on_start", None) is not SpanProcessor.on_start:
        return f"span processor {_name(processor)} implements on_start"
    base_ending = getattr(SpanProcessor, "_on_ending", None)
    if getattr(cls, "_on_ending", base_ending) is not base_ending:
        return f"span processor {_name(processor)} implements _on_ending"
    return None


def _limits_reason(limits: Any) -> str | None:
    if limits is None:
        return None
    for field, default in _DEFAULT_LIMITS.items():
        if hasattr(limits, field) and getattr(limits, field) != default:
            return f"SpanLimits.{field} is {getattr(limits, field)!r} (the SDK's path applies it)"
    return None


def span_path_verdict(tracer: Any) -> str | None:
    """None when otelperf may build ``tracer``'s leaf and request spans itself, else why not."""
    if _forced_off:
        return f"forced off ({ENV_VAR}=0 or sdk_fast_paths=False)"
    if type(tracer) is not SDKTracer:
        return f"the tracer is {_name(tracer)}, not the SDK's"
    multi = getattr(tracer, "span_processor", None)
    processors = getattr(multi, "_span_processors", None)
    if type(multi) is not SynchronousMultiSpanProcessor or not isinstance(processors, tuple):
        return f"span processor container {_name(multi)} is not the SDK's synchronous one"
    for processor in processors:
        reason = processor_reason(processor)
        if reason is not None:
            return reason
    reason = _limits_reason(getattr(tracer, "_span_limits", None))
    if reason is not None:
        return reason
    config = getattr(tracer, "_tracer_config", None)
    if config is not None and not getattr(config, "is_enabled", True):
        return "a tracer configurator disabled the tracer"
    if type(getattr(tracer, "id_generator", None)) is not RandomIdGenerator:
        return (
            f"id generator {_name(getattr(tracer, 'id_generator', None))} is not the SDK's RandomIdGenerator"
        )
    sampler = getattr(tracer, "sampler", None)
    if plain_rule(sampler) not in ("on", "parent"):
        return f"sampler {sampler!r} is not one otelperf decides for (ALWAYS_ON, ParentBased(ALWAYS_ON))"
    metrics = getattr(tracer, "_tracer_metrics", None)
    if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
        return "the SDK's own span metrics are on (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED)"
    if getattr(tracer, "resource", None) is None:
        return "the tracer has no resource"
    return None


class SpanPathGate:
    """The verdict for one tracer, decided again when its processors or configuration change."""

    __slots__ = ("_config", "_multi", "_processors", "_tracer", "is_open", "reason")

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self._multi = getattr(tracer, "span_processor", None)
        self._processors: object = None
        self._config: object = None
        self.is_open = False
        self.reason: str | None = "not decided"
        self.decide()

    def decide(self) -> bool:
        self._processors = getattr(self._multi, "_span_processors", None)
        self._config = getattr(self._tracer, "_tracer_config", None)
        self.reason = span_path_verdict(self._tracer)
        self.is_open = self.reason is None
        return self.is_open

    def open(self) -> bool:
        """Whether the fast path is valid now (two attribute reads when nothing changed)."""
        if (
            getattr(self._multi, "_span_processors", None) is self._processors
            and getattr(self._tracer, "_tracer_config", None) is self._config
            and not _forced_off
        ):
            return self.is_open
        return self.decide()
