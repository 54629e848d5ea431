"""The only code in otelperf that touches the OpenTelemetry SDK's (and API's) internals.

Every fast path otelperf takes around the SDK's public API lives here, is checked against the
installed SDK once (at import, on probes) or against the provider (at init, and again whenever its
processors or tracer configuration change), and falls back to the public API when the check fails:

| module | fast path | falls back to |
| --- | --- | --- |
| ``fast_paths`` | the verdict: may otelperf build a tracer's spans itself, and why not | - |
| ``leaf`` | statement, command and lookup spans built as ``ReadableSpan`` | ``start_span``, ``end`` |
| ``request_span`` | the SERVER span with plain fields and the SDK span's public surface | ``start_span`` |
| ``sampling`` | ALWAYS_ON/OFF and ParentBased(ALWAYS_ON) decided without calling them | the sampler |
| ``span_context`` | ``SpanContext`` fields read by tuple index; ``ReadableSpan`` fields | the properties |
| ``context`` | the current ``Context`` read from the API's ``ContextVar`` | ``context.get_current()`` |
| ``readable`` | exporter-side reads of ended spans (status, events, attributes) | the properties |
| ``metrics`` | otelperf's histograms merged into a reader's collections; fork | SDK histograms |

``OTELPERF_SDK_FAST_PATHS=0`` turns all of them off (the ``sdk_fast_paths`` setting turns off the
span paths of a runtime); ``otelperf doctor`` prints :func:`describe`.
"""

from __future__ import annotations

from typing import Any

from otelperf._sdk import context, fast_paths, span_context

__all__ = ["describe"]


def describe(tracer: Any) -> list[tuple[str, bool, str]]:
    """``(fast path, on, why)`` for each of otelperf's fast paths around the SDK, for ``tracer``."""
    span_reason = fast_paths.span_path_verdict(tracer) if tracer is not None else "otelperf is not running"
    env_off = fast_paths.env_forced_off()
    env_reason = f"{fast_paths.ENV_VAR}=0"
    return [
        (
            "leaf and request spans built directly",
            span_reason is None,
            span_reason or "equivalent for this provider",
        ),
        (
            "SpanContext fields read by index",
            span_context.uses_tuple_layout,
            env_reason
            if env_off
            else ("layout checked at import" if span_context.uses_tuple_layout else "layout differs"),
        ),
        (
            "ReadableSpan fields read directly",
            span_context.readable_span_fields,
            env_reason
            if env_off
            else ("checked at import" if span_context.readable_span_fields else "fields differ"),
        ),
        (
            "current context read from its ContextVar",
            context.reads_the_contextvar,
            env_reason
            if env_off
            else ("the API's runtime context" if context.reads_the_contextvar else "another runtime context"),
        ),
    ]
