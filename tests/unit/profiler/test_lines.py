"""A sampled frame's line where CPython records none (a tight loop's back edge)."""

from __future__ import annotations

import sys
import threading
import time

from otelperf.profiler._lines import line_of


def tight_loop(stop: threading.Event, out: list[int]) -> None:
    n = 0
    while not stop.is_set():
        for i in range(100_000):  # no call inside: the thread is only ever seen at the back edge
            if i < 0:  # never: the back edge after a false `if` is an instruction without a line
                n += 1
    out.append(n)


def test_a_tight_loop_is_placed_on_its_for_line_not_on_line_0() -> None:
    stop, out = threading.Event(), []
    worker = threading.Thread(target=tight_loop, args=(stop, out))
    worker.start()
    lines: set[int] = set()
    raw: set[int | None] = set()
    try:
        for _ in range(50):
            frame = sys._current_frames().get(worker.ident or 0)
            while frame is not None and frame.f_code is not tight_loop.__code__:
                frame = frame.f_back
            if frame is not None:
                raw.add(frame.f_lineno)
                lines.add(line_of(frame))
            time.sleep(0.002)
    finally:
        stop.set()
        worker.join()
    first = tight_loop.__code__.co_firstlineno
    loop_lines = {first + 3, first + 4, first + 5}  # the `for` and its body
    assert lines and lines <= loop_lines | {first + 2}, (lines, raw)  # never 0, never None
    assert 0 not in lines and None not in lines
    if sys.version_info[:2] == (3, 11):  # where CPython gives such a frame no line: the case itself
        assert None in raw, raw


def test_a_frame_with_its_line_keeps_it() -> None:
    frame = sys._getframe()
    assert line_of(frame) == frame.f_lineno
