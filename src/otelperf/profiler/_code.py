"""What a sampled frame is: the application's own code, or which library.

Resolved per code object once (bounded cache) and only off the request path: by the sampler when
it folds a stack, and by the analysis when a finding names functions.

"Application code" is :func:`otelperf._code_origin.classify`'s rule, the same as the call sites'.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import CodeType

from otelperf._code_origin import classify

_MAX_CACHED = 20_000

__all__ = ["CodeInfo", "classify", "info"]


@dataclass(frozen=True)
class CodeInfo:
    """One code object, as the report names it."""

    function: str  # qualified name: "Cart.total", "compute_discount"
    path: str  # relative to the working directory when under it, else absolute
    library: str | None  # None: application code; else "fastapi", "json", "otelperf", ...
    stdlib: bool

    def short_path(self) -> str:
        return os.path.basename(self.path)


def _display_path(filename: str) -> str:
    if filename.startswith("<"):
        return filename
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative


_cache: dict[CodeType, CodeInfo] = {}


def info(code: CodeType) -> CodeInfo:
    found = _cache.get(code)
    if found is not None:
        return found
    library, stdlib = classify(code.co_filename)
    name = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
    found = CodeInfo(name, _display_path(code.co_filename), library, stdlib)
    if len(_cache) < _MAX_CACHED:
        _cache[code] = found
    return found
