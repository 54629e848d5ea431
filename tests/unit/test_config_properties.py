"""No setting takes the app down: random values for every variable otelperf reads.

The variables come from ``config._SPEC``, so a new setting is covered without touching this file.
Values are random strings and numbers, with the ones that broke things before in the mix (0,
negatives, huge integers, nan, inf, '1e12', unicode, empty).

- ``resolve_settings`` never raises outside strict mode, and every value it resolves is within the
  setting's documented bounds (strict mode: it raises ``ConfigError`` or resolves in bounds).
- Fewer examples run the real thing: ``init()``, a request through a small FastAPI app, and
  ``shutdown()``, with the exporters pointed at a closed loopback port. Nothing raises; the app
  answers 200.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import otelperf
from otelperf import config
from otelperf._runtime import setup as _setup
from otelperf.config import BOUNDS, ConfigError, Settings, resolve_settings

OWN_VARS = tuple(spec[1] for spec in config._SPEC)
STD_VARS = tuple(spec[2] for spec in config._SPEC if spec[2] is not None)
ALL_VARS = tuple(v for v in OWN_VARS + STD_VARS if v != "OTELPERF_STRICT")

TRICKY = (
    "0",
    "-0",
    "-1",
    "-5s",
    "0s",
    "0ms",
    "1e12",
    "1e308",
    "1e309",
    "99999999999999999999",
    "9" * 5000,  # over Python's digit limit for int()
    "nan",
    "NaN",
    "inf",
    "-inf",
    "",
    " ",
    ",",
    "=",
    "==,=",
    "1_000",
    "0x10",
    "5m",
    "250ms",
    "true",
    "none",
    "all",
    "grpc",
    "http",
    "traceidratio",
    "parentbased_traceidratio",
    "always_off",
    "http://127.0.0.1:4318",
    "http://[::1",
    "http://host:99999",
    "https://ünïcode.example:4318",
    "team=shop,region=eu",
    "authorization=Bearer%20abc",
    "bad\nname=x",
    "x-request-id,user-agent",
    "ü-header",
    "database/dup",
    "GET /orders/{id}=200ms,*=500ms",
    '{"*": 0}',
    '{"GET /x": "nan"}',
    "*=1e12",
    "slow_query,n_plus_one",
    "fastapi,httpx",
    "django",
    "日本語",
    "\u200b",
)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0, max_value=10**7).map(lambda f: f"{f:g}ms"),
)
VALUE = st.one_of(st.sampled_from(TRICKY), NUMBER_TEXT, TEXT)
ENVIRONS = st.dictionaries(st.sampled_from(ALL_VARS), VALUE, max_size=14)
KWARG_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    VALUE,
    st.lists(VALUE, max_size=3),
    st.dictionaries(TEXT, st.one_of(VALUE, st.floats(allow_nan=True)), max_size=3),
)
KWARGS = st.dictionaries(
    st.sampled_from([n for n in config.SETTING_NAMES if n != "strict"]), KWARG_VALUE, max_size=6
)


def assert_within_bounds(s: Settings) -> None:
    """Every resolved value is one the pipeline can use."""
    for name, bounds in BOUNDS.items():
        value = getattr(s, name)
        values = list(value.values()) if isinstance(value, Mapping) else [value]
        for v in values:
            assert isinstance(v, int | float) and not isinstance(v, bool), (name, v)
            assert math.isfinite(v), (name, v)
            assert bounds.contains(v), f"{name}={v!r} outside {bounds.describe()}"
    assert s.max_export_batch_size <= s.max_queue_size
    assert s.protocol in config.PROTOCOLS
    assert s.sampler in config.SAMPLERS
    assert set(s.instrument) <= set(config.KNOWN_INSTRUMENTATIONS)
    assert set(s.detectors) <= set(config.KNOWN_DETECTORS)
    for url in (s.full_traces_endpoint(), s.full_metrics_endpoint()):
        parsed = urllib.parse.urlsplit(url)
        assert parsed.scheme in ("http", "https") and parsed.hostname
        assert parsed.port is None or 0 <= parsed.port <= 65535
    for name, value in s.headers.items():
        assert config._TOKEN.fullmatch(name) and config._HEADER_VALUE.fullmatch(value)
    for name in s.capture_request_headers:
        name.encode("latin-1")
    assert isinstance(s.service_name, str) and s.service_name


@settings(max_examples=400, deadline=None, database=None)
@given(environ=ENVIRONS, kwargs=KWARGS)
def test_resolve_settings_never_raises_and_stays_in_bounds(
    environ: dict[str, str], kwargs: dict[str, Any]
) -> None:
    resolved = resolve_settings(environ=environ, **kwargs)
    assert_within_bounds(resolved)


@settings(max_examples=150, deadline=None, database=None)
@given(environ=ENVIRONS)
def test_strict_mode_raises_config_error_or_resolves_in_bounds(environ: dict[str, str]) -> None:
    try:
        resolved = resolve_settings(environ={**environ, "OTELPERF_STRICT": "true"})
    except ConfigError as exc:
        assert str(exc).startswith("otelperf configuration: invalid") or "larger than" in str(exc)
        return
    assert_within_bounds(resolved)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _only(environ: dict[str, str]) -> Iterator[None]:
    """os.environ with no otelperf/OTel variable but ``environ``'s, restored afterwards."""
    saved = {k: v for k, v in os.environ.items() if k in OWN_VARS or k in STD_VARS}
    for key in saved:
        del os.environ[key]
    os.environ.update(environ)
    try:
        yield
    finally:
        for key in environ:
            os.environ.pop(key, None)
        os.environ.update(saved)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(environ=ENVIRONS)
def test_init_request_shutdown_with_random_settings(environ: dict[str, str]) -> None:
    assert _setup.current() is None
    closed = f"http://127.0.0.1:{_closed_port()}"
    runtime = None
    try:
        with _only(environ):
            # Only where telemetry goes is fixed, a closed loopback port (export fails at once), and
            # how long an export may retry, so that shutdown() finishes and leaves no exporter
            # retrying into the next test (resolve_settings above covers those two settings).
            runtime = otelperf.init(
                endpoint=closed,
                traces_endpoint=f"{closed}/v1/traces",
                metrics_endpoint=f"{closed}/v1/metrics",
                export_timeout="500ms",
            )
            with TestClient(_app()) as client:
                response = client.get("/items/7", headers={"x-request-id": "abc", "user-agent": "t"})
            assert response.status_code == 200
            assert response.json() == {"id": 7}
            assert_within_bounds(runtime.settings)
    finally:
        started = time.monotonic()
        delivered = otelperf.shutdown(timeout=1.0)
        took = time.monotonic() - started
    # Nothing can be delivered to a closed port: shutdown() says so (False) within its timeout
    # (plus the join's slack), with every span counted and no exporter left retrying.
    assert took < 3.0, f"shutdown(timeout=1.0) took {took:.1f}s"
    stats = runtime.delivery if runtime is not None else None
    if stats is not None:
        assert delivered is (stats.spans_handed == 0)
        assert stats.spans_pending == 0 and stats.balanced, stats
    assert not [
        t.name for t in threading.enumerate() if t.name.startswith(("otelperf-export", "otelperf-send"))
    ]
    assert _setup.current() is None
