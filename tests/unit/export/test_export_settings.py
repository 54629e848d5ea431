"""The delivery settings: retry_buffer (a byte size) and export_concurrency, range-checked."""

from __future__ import annotations

import logging

import pytest

from otelperf.config import ConfigError, resolve_settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1MiB", 1024**2),
        ("256MiB", 256 * 1024**2),
        ("512KiB", 512 * 1024),
        ("64MB", 64 * 1000**2),
        ("1 GiB", 1024**3),
        ("4GiB", 4 * 1024**3),
        ("65536", 65536),
        (1048576, 1048576),
    ],
)
def test_retry_buffer_accepts_sizes(raw: object, expected: int) -> None:
    assert resolve_settings(environ={}, retry_buffer=raw).retry_buffer == expected


def test_retry_buffer_from_the_environment() -> None:
    settings = resolve_settings(environ={"OTELPERF_RETRY_BUFFER": "128MiB"})
    assert settings.retry_buffer == 128 * 1024**2
    assert settings.sources["retry_buffer"] == "OTELPERF_RETRY_BUFFER"
    assert resolve_settings(environ={}).retry_buffer == 64 * 1024**2


@pytest.mark.parametrize("raw", ["1KiB", "5GiB", "lots", "12XB", "-1MiB", "nanMiB", True, "65535"])
def test_bad_retry_buffer_warns_once_and_uses_the_default(
    raw: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otelperf.config")
    assert resolve_settings(environ={}, retry_buffer=raw).retry_buffer == 64 * 1024**2
    [record] = caplog.records
    assert "retry_buffer" in record.getMessage() and "between 64KiB and 4GiB" in record.getMessage()
    with pytest.raises(ConfigError, match="retry_buffer"):
        resolve_settings(environ={}, retry_buffer=raw, strict=True)


def test_export_concurrency_range() -> None:
    assert resolve_settings(environ={}).export_concurrency == 4
    assert resolve_settings(environ={"OTELPERF_EXPORT_CONCURRENCY": "32"}).export_concurrency == 32
    assert resolve_settings(environ={}, export_concurrency=1).export_concurrency == 1
    for bad in ("0", "33", "four"):
        with pytest.raises(ConfigError, match=r"OTELPERF_EXPORT_CONCURRENCY.*1 to 32"):
            resolve_settings(environ={"OTELPERF_EXPORT_CONCURRENCY": bad}, strict=True)
