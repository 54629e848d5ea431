"""Instrumentation suppression: the API's context keys (private names, hence here), read and set.

``opentelemetry.instrumentation.utils.suppress_instrumentation()`` sets the general key; HTTP
client instrumentations also honour the HTTP key (set around a request that is already traced
once, and around otelperf's own export requests). The plain-string key is the legacy one contrib
still honours.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from otelperf._sdk.context import get_current

__all__ = [
    "SUPPRESS_HTTP_KEY",
    "SUPPRESS_KEY",
    "http_suppressed",
    "instrumentation_suppressed",
    "suppressing",
]

LEGACY_KEY = "suppress_instrumentation"
SUPPRESS_KEY: str = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", LEGACY_KEY)
SUPPRESS_HTTP_KEY: str = getattr(
    otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "suppress_http_instrumentation"
)


def instrumentation_suppressed(context: Context | None = None) -> bool:
    """True inside ``suppress_instrumentation()`` (or an equivalent) for ``context`` or the current one."""
    current = get_current() if context is None else context
    return bool(current.get(SUPPRESS_KEY) or current.get(LEGACY_KEY))


def http_suppressed(context: Context | None = None) -> bool:
    """True where outgoing HTTP calls must not be traced (either key)."""
    current = get_current() if context is None else context
    return bool(current.get(SUPPRESS_KEY) or current.get(SUPPRESS_HTTP_KEY))


def suppressing(*, http_only: bool = False, context: Context | None = None) -> Context:
    """``context`` (default: the current one) with instrumentation suppressed: HTTP client calls
    only with ``http_only``, else everything. Attach it and detach the token afterwards."""
    suppressed = otel_context.set_value(SUPPRESS_HTTP_KEY, True, context)
    if not http_only:
        suppressed = otel_context.set_value(SUPPRESS_KEY, True, suppressed)
    return suppressed
