"""The examples in the redaction modules' docstrings are run, so they stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

from otelperf import redaction


@pytest.mark.parametrize("name", ["__init__", "url", "sql", "text", "exceptions", "span_filter"])
def test_docstring_examples(name: str) -> None:
    module = redaction if name == "__init__" else importlib.import_module(f"otelperf.redaction.{name}")
    redaction.configure()
    try:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    finally:
        redaction.configure()
    assert result.failed == 0
