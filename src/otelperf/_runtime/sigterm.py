"""Flush telemetry when SIGTERM would otherwise end the process on the spot.

SIGTERM's default action kills a process without running Python's exit handlers, so otelperf's
last spans (the export batch still waiting, the detector queue) and the last metric interval would
be lost. That is how containers are stopped, and also how uvicorn ends a server: after a graceful
shutdown it restores the handlers it found and raises the captured signals again, so a SIGTERM
received during ``serve()`` is raised once more with the default action.

While SIGTERM has its default action, otelperf installs a handler that flushes (on a thread of its
own, so a lock held by the interrupted code cannot block it, and for at most ``timeout`` seconds),
then restores the default action and raises SIGTERM again: the process ends as it would have, with
the same signal. A handler the application or its server installed is never replaced, and
``flush_on_sigterm=False`` (``OTELPERF_FLUSH_ON_SIGTERM=false``) leaves SIGTERM alone.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

logger = logging.getLogger("otelperf")

_flush: Callable[[], object] | None = None
_timeout = 5.0


def install(flush: Callable[[], object], timeout: float) -> bool:
    """Handle SIGTERM if it has its default action and this is the main thread; True if installed."""
    global _flush, _timeout
    if threading.current_thread() is not threading.main_thread():
        return False  # signal handlers can only be set from the main thread
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_DFL and current is not _on_sigterm:
            return False
        _flush, _timeout = flush, timeout
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or not allowed
        return False
    return True


def uninstall() -> None:
    """Give SIGTERM its default action back, if the handler there is still otelperf's."""
    global _flush
    _flush = None
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError, AttributeError):
        pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    flush = _flush
    if flush is not None:
        worker = threading.Thread(target=_run, args=(flush,), name="otelperf-sigterm-flush", daemon=True)
        worker.start()
        worker.join(_timeout)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)


def _run(flush: Callable[[], object]) -> None:
    try:
        flush()
    except Exception:  # the process is ending: say so, never raise from here
        logger.debug("otelperf: flush on SIGTERM failed", exc_info=True)
