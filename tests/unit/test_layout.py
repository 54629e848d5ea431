"""The folders keep to their rooms (docs/internals.md#layout): what may import what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import otelperf

PACKAGE = Path(otelperf.__file__).parent

# (package, the otelperf packages it must not import)
RULES = [
    ("detectors", ("otelperf.instrumentation", "otelperf.cli", "otelperf.backends")),
    ("pipeline", ("otelperf.instrumentation", "otelperf.cli", "otelperf.backends")),
    (
        "export",
        ("otelperf.instrumentation", "otelperf.detectors", "otelperf.cli"),
    ),  # figures.py reads Prometheus
    ("redaction", ("otelperf.instrumentation", "otelperf.detectors", "otelperf.cli", "otelperf.backends")),
    ("_sdk", ("otelperf.instrumentation", "otelperf.detectors", "otelperf.pipeline", "otelperf.cli")),
    ("backends", ("otelperf.instrumentation", "otelperf.detectors", "otelperf.pipeline", "otelperf.cli")),
]


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=[rule[0] for rule in RULES])
def test_a_package_imports_nothing_from_the_rooms_it_must_not(
    package: str, forbidden: tuple[str, ...]
) -> None:
    modules = sorted((PACKAGE / package).rglob("*.py"))
    assert modules, package
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
        for path in modules
        for line, name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert bad == []


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from otelperf.instrumentation import cache\nimport otelperf.cli\n")
    assert [name for _, name in _imports(probe)] == [
        "otelperf.instrumentation",
        "otelperf.instrumentation.cache",
        "otelperf.cli",
    ]
