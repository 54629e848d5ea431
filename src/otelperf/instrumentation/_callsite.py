"""The call site of a statement: the innermost frame of application code that led to it.

A finding is worth most when it names the line to change. Every statement, Redis command, outgoing
HTTP call and cache lookup otelperf traces carries the semantic-convention attributes
``code.file.path``, ``code.line.number`` and ``code.function.name`` of the innermost frame outside
libraries: outside site-packages/dist-packages, the standard library, otelperf itself and generated
code (``<string>``, ``<frozen ...>``). An application installed into site-packages is a library
by that rule: its statements get no call site.

This runs on the request path for every statement, so it must cost well under a microsecond.
Walking the stack frame by frame costs ~2 µs for the ~15 SQLAlchemy frames between an ORM
attribute access and the DBAPI call (CPython 3.11 builds a frame object for each ``f_back``).
Instead, each key (a statement's text, a Redis command...) remembers where its call site was the
last time: the depth of the application frame, its code and instruction, and the code of the
library frame just inside it. ``sys._getframe(depth)`` walks there in C; when that frame runs the
same code at the same instruction, it is the call site (a loop runs the same statement from the
same depth every time, and its frame object is built once for the whole loop). When it runs
another line of the same function, the library frame inside it is checked too; anything else
walks the stack and remembers the new answer. The names (file, line, function) are worked out
once per line of code. ``benchmarks/callsite.py`` measures the cost.

The check trusts the depth: a statement that reaches the same code and instruction at the same
depth through application code *inside* the library frames (an event listener that runs it,
say) would be reported at the outer frame. That takes the same statement, the same line and the
same depth on two different paths; the walk that found the memo in the first place is exact.

Under SQLAlchemy's asyncio extension a statement runs in a greenlet whose stack ends where the
greenlet started; the application's coroutine is on the stack of the greenlet that waits for it
(its parent), where the walk continues.
"""

from __future__ import annotations

import sys
from types import CodeType, FrameType
from typing import Any

from otelperf import _names
from otelperf._code_origin import classify

__all__ = ["CallSites", "Site", "is_library", "site_of_frame"]

_getframe = sys._getframe

_MAX_SITES = 4096  # (code object, instruction) pairs whose names are kept, process-wide
_MAX_KEYS = 512  # keys remembered per CallSites
_MAX_WALK = 200  # frames looked at before giving up (deep recursion)


_LIBRARY: dict[str, bool] = {}  # co_filename -> whether it is library code


def _classify(filename: str) -> bool:
    return classify(filename)[0] is not None


def is_library(filename: str) -> bool:
    """Whether code from ``filename`` is a library's (not the application's). Cached per file."""
    library = _LIBRARY.get(filename)
    if library is None:
        library = _classify(filename)
        if len(_LIBRARY) < 65536:  # one entry per source file: bounded by the program
            _LIBRARY[filename] = library
    return library


class Site:
    """One line of application code: its code object, an instruction of that line (the one seen
    first) and the line's ``code.*`` attributes."""

    __slots__ = ("attributes", "code", "lasti")

    def __init__(self, code: CodeType, lasti: int, line: int | None) -> None:
        self.code = code  # held, so the id() keys below stay this code's
        self.lasti = lasti
        function = getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+
        attributes: dict[str, Any] = {
            _names.CODE_FILE_PATH: code.co_filename,
            _names.CODE_FUNCTION_NAME: function,
        }
        if line is not None:
            attributes[_names.CODE_LINE_NUMBER] = line
        self.attributes = attributes


_SITES: dict[tuple[int, int], Site] = {}  # by (id(code), instruction)
_LINES: dict[tuple[int, int | None], Site] = {}  # by (id(code), line): one Site per line


def site_of_frame(frame: FrameType) -> Site:
    """The :class:`Site` of ``frame``'s current line (shared: operations from one line share their
    attributes; found by instruction, whose line is worked out once)."""
    code = frame.f_code
    lasti = frame.f_lasti
    key = (id(code), lasti)
    site = _SITES.get(key)
    if site is None or site.code is not code:
        line = frame.f_lineno
        site = _LINES.get((id(code), line))
        if site is None or site.code is not code:
            site = Site(code, lasti, line)
            if len(_LINES) >= _MAX_SITES:
                _LINES.clear()
            _LINES[id(code), line] = site
        if len(_SITES) >= _MAX_SITES:
            _SITES.clear()
        _SITES[key] = site
    return site


class _Memo:
    """Where a key's call site was last time: ``depth`` for ``sys._getframe`` from the caller of
    :meth:`CallSites.attributes`, the library code just inside it, the site, the merged attributes."""

    __slots__ = ("depth", "greenlet", "inner", "merged", "parent_depth", "parent_inner", "site")

    def __init__(self, depth: int, inner: CodeType, site: Site, greenlet: bool) -> None:
        self.depth = depth
        self.inner = inner
        self.site = site
        self.greenlet = greenlet  # the site is on the parent greenlet's stack, past the frame at depth
        # On the parent greenlet's stack: f_back steps from its frame to the site's, and the code
        # just inside the site (SQLAlchemy's greenlet_spawn, usually).
        self.parent_depth = 0
        self.parent_inner: CodeType | None = None
        # (site, base, base + site's attributes), replaced as one: threads share the memo.
        self.merged: tuple[Site, dict[str, Any], dict[str, Any]] | None = None


_getcurrent: Any = None  # greenlet.getcurrent, once greenlet is imported


def _parent_greenlet_frame() -> FrameType | None:
    """The frame at which the greenlet that started this one waits (SQLAlchemy's asyncio bridge)."""
    global _getcurrent
    if _getcurrent is None:
        greenlet = sys.modules.get("greenlet")
        if greenlet is None:
            return None
        _getcurrent = greenlet.getcurrent
    parent = _getcurrent().parent
    if parent is None:
        return None
    frame: FrameType | None = parent.gr_frame
    return frame


def _walk_from(frame: FrameType | None, limit: int) -> tuple[FrameType, int, CodeType | None] | None:
    """(the first frame of application code from ``frame`` outward, within ``limit`` frames, its
    f_back steps from ``frame``, the code of the frame just inside it or None)."""
    steps = 0
    inner: CodeType | None = None
    while frame is not None and steps < limit:
        code = frame.f_code
        if not is_library(code.co_filename):
            return frame, steps, inner
        inner = code
        frame = frame.f_back
        steps += 1
    return None


def _recall_in_parent(memo: _Memo) -> Site | None:
    """The site on the parent greenlet's stack: where it was last time when the stack there has the
    same shape (a loop awaiting from one line), else found by a walk (and remembered)."""
    frame = _parent_greenlet_frame()
    if frame is None:
        return None
    start = frame
    inner = memo.parent_inner
    if inner is not None:
        steps = memo.parent_depth - 1  # to the frame just inside the site
        while steps > 0 and frame is not None:
            frame = frame.f_back
            steps -= 1
        if frame is not None and frame.f_code is inner:
            outer = frame.f_back
            site = memo.site
            if outer is not None and outer.f_code is site.code and outer.f_lasti == site.lasti:
                return site
    found = _walk_from(start, _MAX_WALK)
    if found is None:
        return None
    memo.parent_depth, memo.parent_inner = found[1], found[2]
    return site_of_frame(found[0])


class CallSites:
    """Remembers, per key, where the operations of that key are called from; one per kind of
    operation and connection (a SQLAlchemy engine, a Redis instrumentation...)."""

    __slots__ = ("_memos",)

    def __init__(self) -> None:
        self._memos: dict[Any, _Memo] = {}

    # site() and attributes() repeat the same few lines on purpose: the usual case (the stack as
    # last time) is done inline, without further Python calls; depths count from their caller.
    # The usual case is checked on the site's own frame alone, the same code at the same
    # instruction at the same depth: a loop's frame lives through the loop, so CPython builds its
    # frame object once, where checking the library frame inside it would build one per statement.

    def site(self, key: Any) -> Site | None:
        """The caller's call site (None when the stack holds no application code)."""
        memo = self._memos.get(key)
        if memo is not None and not memo.greenlet:
            try:
                frame = _getframe(memo.depth + 1)  # + this method
            except ValueError:
                frame = None
            site = memo.site
            if frame is not None and frame.f_code is site.code and frame.f_lasti == site.lasti:
                return site  # the same line as last time: the usual case in a loop
        memo = self._slow(key, memo)
        return None if memo is None else memo.site

    def attributes(self, key: Any, base: dict[str, Any]) -> dict[str, Any]:
        """``base`` plus the ``code.*`` attributes of the caller's call site: a dict shared by the
        operations of ``key`` from that site, never to be changed. ``base`` itself when the
        stack holds no application code."""
        memo = self._memos.get(key)
        if memo is not None and not memo.greenlet:
            cached = memo.merged
            if cached is not None and cached[1] is base:
                try:
                    frame = _getframe(memo.depth + 1)  # + this method
                except ValueError:
                    frame = None
                site = cached[0]
                if frame is not None and frame.f_code is site.code and frame.f_lasti == site.lasti:
                    return cached[2]
        elif memo is not None and _getcurrent is not None:
            # SQLAlchemy's asyncio extension: this greenlet's stack is the library's to its start
            # (checked on its last frame), the site is on the stack of the greenlet that waits.
            cached = memo.merged
            if cached is not None and cached[1] is base and memo.parent_depth == 1:
                try:
                    frame = _getframe(memo.depth)  # depth - 1 from the caller, + this method
                except ValueError:
                    frame = None
                parent = _getcurrent().parent
                if (
                    frame is not None
                    and frame.f_back is None
                    and frame.f_code is memo.inner
                    and parent is not None
                ):
                    waiting = parent.gr_frame
                    site = cached[0]
                    if waiting is not None and waiting.f_code is memo.parent_inner:
                        outer = waiting.f_back
                        if outer is not None and outer.f_code is site.code and outer.f_lasti == site.lasti:
                            return cached[2]
        memo = self._slow(key, memo)
        if memo is None:
            return base
        site = memo.site
        cached = memo.merged
        if cached is not None and cached[0] is site and cached[1] is base:
            return cached[2]
        merged = dict(base)
        merged.update(site.attributes)
        memo.merged = (site, base, merged)
        return merged

    def _slow(self, key: Any, memo: _Memo | None) -> _Memo | None:
        """The memo of ``key`` with the current site in ``memo.site``, when the inline check failed:
        another line of the same function, a greenlet, or a stack of another shape. Frames:
        this, site()/attributes(), their caller (depth 0)."""
        if memo is not None:
            site = self._recall(memo)
            if site is not None:
                memo.site = site
                return memo
        return self._locate(key)

    def _recall(self, memo: _Memo) -> Site | None:
        """The site, when the stack still has the shape remembered in ``memo``; else None."""
        try:
            # The library frame just inside the site is at depth - 1 from the caller; this method,
            # _slow() and site()/attributes() are 3 more.
            frame = _getframe(memo.depth + 2)
        except ValueError:
            return None
        if frame.f_code is not memo.inner:
            return None
        outer = frame.f_back
        if memo.greenlet:
            return None if outer is not None else _recall_in_parent(memo)
        if outer is None or is_library(outer.f_code.co_filename):
            return None
        return site_of_frame(outer)

    def _locate(self, key: Any) -> _Memo | None:
        """Walk the stack from the caller; remember what was found under ``key``."""
        frame: FrameType | None = _getframe(3)  # _locate <- _slow <- site()/attributes() <- caller
        depth = 0
        inner: CodeType | None = None
        while frame is not None and depth < _MAX_WALK:
            code = frame.f_code
            if not is_library(code.co_filename):
                if inner is None:
                    return None  # the caller itself is application code: no library frames to skip
                return self._remember(key, _Memo(depth, inner, site_of_frame(frame), False))
            inner = code
            frame = frame.f_back
            depth += 1
        if frame is None and inner is not None:
            found = _walk_from(_parent_greenlet_frame(), _MAX_WALK)
            if found is not None:
                memo = _Memo(depth, inner, site_of_frame(found[0]), True)
                memo.parent_depth, memo.parent_inner = found[1], found[2]
                return self._remember(key, memo)
        return None

    def _remember(self, key: Any, memo: _Memo) -> _Memo:
        memos = self._memos
        old = memos.get(key)
        if old is not None:
            memo.merged = old.merged  # the same site from another path keeps its attributes
        elif len(memos) >= _MAX_KEYS:
            memos.clear()
        memos[key] = memo
        return memo
