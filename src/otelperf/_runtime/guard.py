"""The internal-error guard: otelperf's own failures never reach the application.

In production an error inside otelperf is logged (at most once a minute per place) and counted,
and the app carries on with less telemetry. Under pytest the same error is re-raised, so that a
bug in otelperf fails the test that found it instead of hiding behind a log line.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("otelperf")

_lock = threading.Lock()
_last_logged: dict[str, float] = {}
_errors: list[tuple[str, BaseException]] = []
_MAX_REMEMBERED = 100
internal_error_count = 0


def _under_pytest() -> bool:
    return "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("OTELPERF_RAISE_INTERNAL_ERRORS") == "1"


def record_internal_error(where: str, exc: BaseException) -> None:
    """Count and (rate-limited) log an internal error. Never raises."""
    global internal_error_count
    try:
        with _lock:
            internal_error_count += 1
            if len(_errors) < _MAX_REMEMBERED:
                _errors.append((where, exc))
            now = time.monotonic()
            last = _last_logged.get(where)
            if last is not None and now - last < 60.0:
                return
            _last_logged[where] = now
        # The traceback is sanitized like a recorded exception: otelperf's own errors can carry
        # the text of what it was handling (a statement, a URL), and an app may export its logs.
        from otelperf.redaction.exceptions import sanitize_exception

        safe = sanitize_exception(exc)
        logger.warning(
            "otelperf internal error in %s (your code still runs, with less telemetry): %s: %s\n%s",
            where,
            safe.type,
            safe.message,
            safe.stacktrace.rstrip(),
        )
    except Exception:  # pragma: no cover - logging itself failed; nothing safe left to do
        pass


@contextmanager
def guard(where: str) -> Iterator[None]:
    """Swallow-and-record an internal error; re-raise it under pytest."""
    try:
        yield
    except Exception as exc:
        swallow(where, exc)


def swallow(where: str, exc: Exception) -> None:
    """``guard`` for a per-operation hot path, where a generator context manager costs more than
    the work it guards: call from an ``except Exception`` block (re-raises under pytest)."""
    record_internal_error(where, exc)
    if _under_pytest():
        raise exc


def take_internal_errors() -> list[tuple[str, BaseException]]:
    """Return and forget the internal errors recorded so far (used by the pytest plugin)."""
    with _lock:
        taken = list(_errors)
        _errors.clear()
    return taken


class RateLimitedWarning:
    """Log a warning at most once per ``interval`` seconds; count the suppressed ones."""

    def __init__(self, log: logging.Logger, interval: float = 60.0) -> None:
        self._log = log
        self._interval = interval
        self._last = -1e18
        self.suppressed = 0
        self._lock = threading.Lock()

    def warn(self, msg: str, *args: object, force: bool = False) -> None:
        """Log unless one was logged within the interval (``force``: log anyway, restart it)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval and not force:
                self.suppressed += 1
                return
            self._last = now
            suppressed, self.suppressed = self.suppressed, 0
        if suppressed:
            msg += " (%d similar warnings suppressed)"
            args = (*args, suppressed)
        self._log.warning(msg, *args)


def python_is_finalizing() -> bool:
    return sys.is_finalizing()
