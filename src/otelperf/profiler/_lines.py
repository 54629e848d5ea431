"""The line a sampled frame is at, also where CPython records none.

A thread in a tight loop without calls hands the GIL over at the loop's back edge (CPython 3.11+
checks for a pending hand-over on the backward jump), so that is where the sampler, which needs
the GIL, finds it: an instruction the compiler gave no line (``frame.f_lineno`` is None). Its line
is then the jump's target, the loop's ``for``/``while``; for any other instruction without a line,
the nearest line before it. Worked out once per (code, offset), on the sampler's thread.
"""

from __future__ import annotations

import dis
from types import CodeType, FrameType

__all__ = ["line_of"]

_MAX_CACHED = 4096
_resolved: dict[tuple[CodeType, int], int] = {}


def line_of(frame: FrameType) -> int:
    line = frame.f_lineno
    if line is not None:
        return line
    code, offset = frame.f_code, frame.f_lasti
    key = (code, offset)
    found = _resolved.get(key)
    if found is None:
        found = _resolve(code, offset)
        if len(_resolved) < _MAX_CACHED:
            _resolved[key] = found
    return found


def _line_at(code: CodeType, offset: int) -> int | None:
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return None


def _resolve(code: CodeType, offset: int) -> int:
    try:
        for instruction in dis.get_instructions(code):
            if instruction.offset == offset:
                if instruction.opname.startswith("JUMP_BACKWARD") and isinstance(instruction.argval, int):
                    target = _line_at(code, instruction.argval)
                    if target is not None:
                        return target
                break
        best = code.co_firstlineno
        for start, _, line in code.co_lines():
            if start > offset:
                break
            if line is not None:
                best = line
        return best
    except Exception:  # an odd code object: the function's first line is still right
        return code.co_firstlineno
