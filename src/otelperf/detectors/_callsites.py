"""Call sites as the detectors read and show them: from a span's ``code.*`` attributes to
``app/routes.py:42 in list_authors()``.

The instrumentation puts the semantic-convention attributes ``code.file.path``,
``code.line.number`` and ``code.function.name`` of the application's innermost frame on each
statement's span (otelperf.instrumentation._callsite); any other instrumentation that sets them
is read the same way. Names are shown relative to the working directory when the file is under
it, the way a developer opens it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from otelperf import _names
from otelperf.detectors._api import attributes_of

__all__ = ["CallSite", "call_site_of", "common_call_site", "display_path"]


@lru_cache(maxsize=1024)
def _display_path(path: str, cwd: str) -> str:
    if cwd and os.path.isabs(path):
        prefix = os.path.join(cwd, "")
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it is under it, else as it is."""
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    return _display_path(path, cwd)


@dataclass(frozen=True)
class CallSite:
    """Where in the application's code an operation was run from."""

    file: str
    line: int | None
    function: str

    def __str__(self) -> str:
        where = display_path(self.file) if self.line is None else f"{display_path(self.file)}:{self.line}"
        return f"{where} in {self.function}()" if self.function else where

    def details(self) -> dict[str, Any]:
        """The semantic-convention attributes, plus ``call_site`` (the text above)."""
        out: dict[str, Any] = {"call_site": str(self), _names.CODE_FILE_PATH: self.file}
        if self.line is not None:
            out[_names.CODE_LINE_NUMBER] = self.line
        if self.function:
            out[_names.CODE_FUNCTION_NAME] = self.function
        return out


def call_site_of(span: ReadableSpan, attributes: Mapping[str, Any] | None = None) -> CallSite | None:
    """The span's call site, when it carries one."""
    if attributes is None:
        attributes = attributes_of(span)
    path = attributes.get(_names.CODE_FILE_PATH)
    if not isinstance(path, str) or not path:
        return None
    line = attributes.get(_names.CODE_LINE_NUMBER)
    function = attributes.get(_names.CODE_FUNCTION_NAME)
    return CallSite(
        path, line if isinstance(line, int) else None, function if isinstance(function, str) else ""
    )


def common_call_site(spans: Iterable[ReadableSpan]) -> CallSite | None:
    """The call site most of ``spans`` share (the loop's line), the earliest on a tie."""
    counts: Counter[CallSite] = Counter()
    for span in spans:
        site = call_site_of(span)
        if site is not None:
            counts[site] += 1
    if not counts:
        return None
    return counts.most_common(1)[0][0]
