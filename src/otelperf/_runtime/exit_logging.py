"""Logging at interpreter exit without writing into closed streams.

otelperf flushes at exit (atexit, multiprocessing's finalizers) and its export threads may still log
while the interpreter ends. By then a handler's stream may be closed: pytest closes the capture
files a ``StreamHandler`` made during a test was bound to, an app may close its log file first.
Writing there makes ``logging`` print a ``--- Logging error ---`` traceback over the real output.

At exit, otelperf's and OpenTelemetry's loggers get a filter that hands each record to the
handlers whose stream is still open and skips the closed ones; the application's loggers are
not touched.
"""

from __future__ import annotations

import contextlib
import logging

__all__ = ["guard_closed_streams"]

_PREFIXES = ("otelperf", "opentelemetry")


def _closed(handler: logging.Handler) -> bool:
    try:
        stream = getattr(handler, "stream", None)  # lastResort's is sys.stderr, read when asked
        if stream is None:  # no stderr at all; a FileHandler with delay=True opens on first use
            return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        return bool(getattr(stream, "closed", False))
    except Exception:  # a stream that cannot even say: do not write to it
        return True


def _reachable(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers ``logger.callHandlers`` would call, in its order."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    return found


class SkipClosedStreams(logging.Filter):
    """Deliver a record only to handlers whose stream is open (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        handlers = _reachable(logging.getLogger(record.name))
        if not handlers:
            last = logging.lastResort
            return last is None or not _closed(last)
        if not any(_closed(h) for h in handlers):
            return True
        for handler in handlers:
            if not _closed(handler) and record.levelno >= handler.level:
                with contextlib.suppress(Exception):  # the process is ending: nothing to do about it
                    handler.handle(record)
        return False


_FILTER = SkipClosedStreams()


def guard_closed_streams() -> None:
    """Install the filter on every otelperf and OpenTelemetry logger there is (idempotent)."""
    for name in ("otelperf", "otelperf.export", "otelperf.config"):
        logging.getLogger(name)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (
            isinstance(logger, logging.Logger)
            and name.startswith(_PREFIXES)
            and _FILTER not in logger.filters
        ):
            logger.addFilter(_FILTER)
