"""The current OpenTelemetry ``Context``, read with one C call.

``opentelemetry.context.get_current()`` is two Python calls (the API's function, then its runtime
context's method) around a single ``ContextVar.get()``, and otelperf reads the current context
several times per request and once per statement or cache lookup. With the API's own runtime
context (``ContextVarsRuntimeContext``, the default; checked at import), otelperf reads that
``ContextVar`` itself. Any other runtime context (``OTEL_PYTHON_CONTEXT``) is asked through the API.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from opentelemetry import context as _api
from opentelemetry.context import Context

from otelperf._sdk.fast_paths import env_forced_off

__all__ = ["get_current", "reads_the_contextvar"]


def _getter() -> tuple[Callable[[], Context], bool]:
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        runtime = getattr(_api, "_RUNTIME_CONTEXT", None)
        if type(runtime) is ContextVarsRuntimeContext:
            var = getattr(runtime, "_current_context", None)
            if isinstance(var, ContextVar) and var.get() is runtime.get_current():
                return var.get, True
    except Exception:  # an API laid out otherwise: its function, always
        pass
    return _api.get_current, False


get_current, reads_the_contextvar = (_api.get_current, False) if env_forced_off() else _getter()
