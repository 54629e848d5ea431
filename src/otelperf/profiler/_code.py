"""What a sampled frame is: the application's own code, or which library.

Resolved per code object once (bounded cache) and only off the request path: by the sampler when
it folds a stack, and by the analysis when a finding names functions.

"Application code" is every file outside the standard library, site-/dist-packages, otelperf and
code built at run time (``<frozen ...>``, ``<string>``): the code its developers can change.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from types import CodeType

_MAX_CACHED = 20_000

_OTELPERF_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _library_roots() -> tuple[tuple[str, bool], ...]:
    """(directory, is the standard library) for the interpreter's library directories, longest first."""
    roots: dict[str, bool] = {}
    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib"):
        if paths.get(key):
            roots[os.path.abspath(paths[key]) + os.sep] = False
    for key in ("stdlib", "platstdlib"):
        if paths.get(key):
            roots.setdefault(os.path.abspath(paths[key]) + os.sep, True)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        lib = os.path.join(prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        roots.setdefault(os.path.abspath(lib) + os.sep, True)
    return tuple(sorted(roots.items(), key=lambda kv: -len(kv[0])))


_ROOTS = _library_roots()
_PACKAGE_DIRS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


@dataclass(frozen=True)
class CodeInfo:
    """One code object, as the report names it."""

    function: str  # qualified name: "Cart.total", "compute_discount"
    path: str  # relative to the working directory when under it, else absolute
    library: str | None  # None: application code; else "fastapi", "json", "otelperf", ...
    stdlib: bool

    def short_path(self) -> str:
        return os.path.basename(self.path)


def _first_part(rest: str) -> str:
    head = rest.split(os.sep, 1)[0]
    for suffix in (".py", ".pyc", ".so"):
        if head.endswith(suffix):
            head = head[: -len(suffix)].split(".", 1)[0]
    return head or "?"


def classify(filename: str) -> tuple[str | None, bool]:
    """(library name or None for application code, is it the standard library)."""
    if filename.startswith("<"):
        inner = filename.strip("<>").removeprefix("frozen ").strip()
        return (inner.split(".", 1)[0] or "<built>"), True
    path = os.path.abspath(filename)
    if path.startswith(_OTELPERF_DIR):
        return "otelperf", False
    for marker in _PACKAGE_DIRS:
        at = path.rfind(marker)
        if at >= 0:
            return _first_part(path[at + len(marker) :]), False
    for root, stdlib in _ROOTS:
        if path.startswith(root):
            return _first_part(path[len(root) :]), stdlib
    return None, False


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
