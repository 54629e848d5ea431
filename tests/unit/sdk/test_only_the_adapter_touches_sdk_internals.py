"""SDK internals are touched in one place: ``otelperf/_sdk/``. Everything else uses public API.

Walks every module of the package outside ``_sdk`` and fails on: an import of a private
OpenTelemetry name or ``_internal`` module, and a read or write of a private field of an SDK or
API object (any ``x._field`` where ``x`` is not ``self``/``cls`` and the field is one the SDK's
classes keep), including through ``getattr``/``setattr``/``hasattr`` with a literal name, and a
SpanContext read by tuple index.
"""

from __future__ import annotations

import ast
from pathlib import Path

import otelperf

PACKAGE = Path(otelperf.__file__).parent
ADAPTER = PACKAGE / "_sdk"

# Private fields of OpenTelemetry objects otelperf has had reasons to read (spans, contexts,
# processors, providers, readers, samplers, the API's context runtime).
SDK_PRIVATE_FIELDS = frozenset({
    "_context", "_parent", "_name", "_kind", "_start_time", "_end_time", "_status", "_status_code",
    "_attributes", "_events", "_links", "_resource", "_instrumentation_scope", "_instrumentation_info",
    "_span_processors", "_active_span_processor", "_span_limits", "_tracer_config", "_tracer_metrics",
    "_metric_readers", "_sdk_config", "_exporter", "_shutdown_event", "_collect", "_set_collect_callback",
    "_dq", "_decision", "_root", "_RUNTIME_CONTEXT", "_current_context", "_SPAN_KEY",
    "_SUPPRESS_INSTRUMENTATION_KEY", "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", "_tracers",
})  # fmt: skip
_OWN = {"self", "cls"}
# Names under which otelperf holds SpanContexts: reading one by index relies on its tuple layout.
_CONTEXT_NAMES = {"ctx", "parent", "context", "span_context", "parent_ctx", "parent_context"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(PACKAGE.parent)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("opentelemetry"):
            if "._internal" in node.module or any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"{where}:{node.lineno}: imports from {node.module}")
            found.extend(
                f"{where}:{node.lineno}: imports {alias.name} from {node.module}"
                for alias in node.names
                if alias.name.startswith("_")
            )
        elif isinstance(node, ast.Attribute) and node.attr in SDK_PRIVATE_FIELDS:
            if not (isinstance(node.value, ast.Name) and node.value.id in _OWN):
                found.append(f"{where}:{node.lineno}: reads .{node.attr}")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in _CONTEXT_NAMES
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
        ):
            found.append(
                f"{where}:{node.lineno}: {node.value.id}[{node.slice.value}] (SpanContext's tuple layout)"
            )
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in SDK_PRIVATE_FIELDS
            and not (isinstance(node.args[0], ast.Name) and node.args[0].id in _OWN)
        ):
            found.append(f"{where}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


def test_no_module_outside_the_adapter_touches_sdk_internals() -> None:
    modules = [p for p in PACKAGE.rglob("*.py") if ADAPTER not in p.parents]
    assert len(modules) > 50  # the walk sees the package
    violations = [v for path in sorted(modules) for v in _violations(path)]
    assert violations == []


def test_the_check_catches_what_it_looks_for(tmp_path: Path) -> None:
    probe = PACKAGE / "_probe_for_the_internals_check.py"
    probe.write_text(
        "from opentelemetry.sdk.metrics._internal.exemplar import Exemplar\n"
        "from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY\n"
        "def f(span, provider):\n"
        "    self_like = span._attributes\n"
        "    return getattr(provider, '_metric_readers', None), self_like, parent[2]\n"
    )
    try:
        found = _violations(probe)
    finally:
        probe.unlink()
    assert len(found) == 5, found
