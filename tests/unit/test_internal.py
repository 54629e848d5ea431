"""The internal-error guard logs otelperf's own errors without the secrets their text may carry."""

from __future__ import annotations

import logging

import pytest

from otelperf._runtime import guard as _internal


def test_an_internal_errors_log_line_is_sanitized(caplog: pytest.LogCaptureFixture) -> None:
    password, token = "pw-" + "cnry1", "cnry" + "2"  # runtime values: the traceback shows source lines

    def fail() -> None:
        raise RuntimeError(f"export to https://u:{password}@h.example/x?token={token}&page=1 failed")

    try:
        fail()
    except RuntimeError as exc:
        error = exc
    with caplog.at_level(logging.WARNING, logger="otelperf"):
        _internal.record_internal_error("test.sanitized-log", error)
    _internal.take_internal_errors()
    [record] = [r for r in caplog.records if "test.sanitized-log" in r.getMessage()]
    text = record.getMessage() + (record.exc_text or "")
    assert "cnry1" not in text and "cnry2" not in text
    # What a person needs is still there: the place, the type, the host, where it was raised.
    assert "otelperf internal error in test.sanitized-log" in text
    assert "RuntimeError: export to https://REDACTED:REDACTED@h.example/x?token=REDACTED&page=1" in text
    assert "in fail" in text
    assert record.exc_info is None  # the raw traceback (with the raw message) is not attached
