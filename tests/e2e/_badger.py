"""What the delivery e2e modules share: progress lines on the terminal, and Jaeger on Badger.

An in-memory Jaeger forgets every trace when it is killed, so the modules that kill or restart
components run Jaeger on Badger storage, and put the stack back as they found it afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from otelperf.stack import Stack

Say = Callable[[str], None]


def progress_writer(pytestconfig: pytest.Config, label: str) -> Say:
    """Progress lines on the terminal as the scenario goes (with or without ``-s``)."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    began = time.monotonic()

    def write(message: str) -> None:
        line = f"[{label} {time.monotonic() - began:6.1f} s] {message}"
        if reporter is None or capture is None:
            print(line, flush=True)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return write


@contextmanager
def jaeger_on_badger(say: Say) -> Iterator[Stack]:
    """The running stack with Jaeger restarted on Badger; afterwards Jaeger back on its in-memory
    storage, then the collector restarted too."""
    badger = Stack(with_alertmanager=False, jaeger_storage="badger", progress=say)
    say("restarting Jaeger on Badger storage (kept across Jaeger restarts)")
    badger.restart("jaeger", timeout=90)
    try:
        yield badger
    finally:
        say("restarting Jaeger on its in-memory storage again, then the collector")
        memory = Stack(with_alertmanager=False, progress=say)
        memory.restart("jaeger", timeout=90)
        # Both count from zero again: what the collector says it sent, Jaeger says it stored
        # (tests/e2e/_backend.wait_spans_stored compares them), even on a stack that outlives
        # the session.
        memory.restart("collector", timeout=60)
