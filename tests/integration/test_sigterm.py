"""SIGTERM's default action ends a process without exit handlers: otelperf flushes first.

Each case is a real process exporting to a loopback OTLP sink with a long export delay, so the
span it makes is still queued when the process receives SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from otelperf.testing import OTLPSink, SinkSpan

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    if os.environ.get("APP_HANDLER") == "1":
        signal.signal(signal.SIGTERM, lambda *_: (print("app handler", flush=True), sys.exit(3)))
    import otelperf
    from opentelemetry import trace
    otelperf.init(service_name="sigterm")
    handler = signal.getsignal(signal.SIGTERM)
    print("handler:", getattr(handler, "__name__", handler), flush=True)
    with trace.get_tracer("t").start_as_current_span("queued-at-sigterm"):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    import time
    time.sleep(30)
    print("not reached", flush=True)
    """
)


def _run(sink: OTLPSink, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTEST_"))}
    base.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTELPERF_SCHEDULE_DELAY="60s",  # nothing leaves on a timer: only a flush sends the span
        OTELPERF_METRIC_EXPORT_INTERVAL="60s",
        PYTHONPATH=str(ROOT / "src"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=base, capture_output=True, text=True, timeout=60, check=False
    )


def _queued(spans: list[SinkSpan]) -> bool:
    return any(s.name == "queued-at-sigterm" for s in spans)


def test_a_span_queued_at_sigterm_is_exported_and_the_process_still_ends_by_sigterm() -> None:
    with OTLPSink() as sink:
        done = _run(sink)
        assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
        assert "not reached" not in done.stdout
        assert "handler: _on_sigterm" in done.stdout
        assert _queued(sink.wait_for_spans(_queued, timeout=10))


def test_without_the_flush_the_queued_span_is_lost() -> None:
    """The control: with flush_on_sigterm off the same span never arrives (the case above is not
    passing by some other exit path)."""
    with OTLPSink() as sink:
        done = _run(sink, OTELPERF_FLUSH_ON_SIGTERM="false")
        assert done.returncode == -signal.SIGTERM, done.stdout + done.stderr
        assert "handler: 0" in done.stdout  # SIG_DFL
        assert not _queued(sink.wait_for_spans(_queued, timeout=3))


def test_an_application_sigterm_handler_is_left_in_place() -> None:
    with OTLPSink() as sink:
        done = _run(sink, APP_HANDLER="1")
        assert "handler: <lambda>" in done.stdout, done.stdout + done.stderr
        assert "app handler" in done.stdout
        assert done.returncode == 3
