"""Whose code a file is: the application's, or a library's (and which one).

One rule for every place otelperf names "your code": the call sites on spans
(:mod:`otelperf.instrumentation._callsite`) and the sampling profiler's functions
(:mod:`otelperf.profiler._code`). Application code is every file outside the standard library,
site-/dist-packages, otelperf itself and code built at run time (``<string>``, ``<frozen ...>``,
dataclasses' generated methods): the code its developers can change. An application installed
into site-packages is a library by that rule.
"""

from __future__ import annotations

import os
import sys
import sysconfig

__all__ = ["classify"]

_OTELPERF_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_PACKAGE_DIRS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _library_roots() -> tuple[tuple[str, bool], ...]:
    """(directory, is the standard library) for the interpreter's library directories, as given
    and with symlinks resolved, longest first."""
    roots: dict[str, bool] = {}

    def add(path: str, stdlib: bool) -> None:
        for form in (os.path.abspath(path), os.path.realpath(path)):
            roots.setdefault(os.path.join(form, ""), stdlib)

    paths = sysconfig.get_paths()
    for key in ("purelib", "platlib"):
        if paths.get(key):
            add(paths[key], False)
    for key in ("stdlib", "platstdlib"):
        if paths.get(key):
            add(paths[key], True)
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        add(os.path.join(prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}"), True)
    return tuple(sorted(roots.items(), key=lambda kv: -len(kv[0])))


_ROOTS = _library_roots()


def _first_part(rest: str) -> str:
    head = rest.split(os.sep, 1)[0]
    for suffix in (".py", ".pyc", ".so"):
        if head.endswith(suffix):
            head = head[: -len(suffix)].split(".", 1)[0]
    return head or "?"


def classify(filename: str) -> tuple[str | None, bool]:
    """(the library's name, or None for application code; whether it is the standard library)."""
    if not filename or filename.startswith("<"):
        inner = filename.strip("<>").removeprefix("frozen ").strip()
        return (inner.split(".", 1)[0] or "<built>"), True
    path = os.path.abspath(filename)
    if path.startswith(_OTELPERF_DIR) or os.path.realpath(path).startswith(_OTELPERF_DIR):
        return "otelperf", False
    for marker in _PACKAGE_DIRS:
        at = path.rfind(marker)
        if at >= 0:
            return _first_part(path[at + len(marker) :]), False
    for root, stdlib in _ROOTS:
        if path.startswith(root):
            return _first_part(path[len(root) :]), stdlib
    return None, False
