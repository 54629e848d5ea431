"""Exiting with the collector unreachable prints no "--- Logging error ---".

The child process does what a test under pytest does: logging is configured while sys.stderr is a
capture file, which is closed before the interpreter exits. otelperf's exit flush then gives up on
the collector (a port that accepts and never answers) and warns: that warning must not be written
into the closed file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

CHILD = textwrap.dedent(
    """
    import io, logging, sys, tempfile

    capture = io.TextIOWrapper(tempfile.TemporaryFile(), encoding="utf-8")
    real_stderr, sys.stderr = sys.stderr, capture
    logging.basicConfig(level=logging.INFO)  # its handler writes to the capture file

    import otelperf

    runtime = otelperf.init(
        service_name="exit", instrument="none", endpoint=sys.argv[1],
        shutdown_timeout="300ms", schedule_delay="10ms", export_timeout=5,
    )
    for _ in range(20):
        with runtime.tracer.start_as_current_span("work"):
            pass
    logging.getLogger("app").info("app done")
    sys.stderr = real_stderr
    capture.close()  # as pytest closes its capture before the interpreter exits
    print("exiting", flush=True)
    """
)


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback port that accepts connections (kernel backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_exit_flush_does_not_log_into_a_closed_stream(blackhole: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, blackhole],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "exiting" in result.stdout
    assert "Logging error" not in result.stderr, result.stderr
    assert "I/O operation on closed file" not in result.stderr, result.stderr
