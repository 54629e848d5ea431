"""One settings object for otelperf.

Precedence, per setting: keyword argument to :func:`otelperf.init` > ``OTELPERF_*`` environment
variable > the standard ``OTEL_*`` variable (with its standard meaning) > default. ``budgets`` has one
more step before the default: the p95 values of the budgets file (``budgets_file=`` /
``OTELPERF_BUDGETS_FILE``, else ``otelperf.toml`` or ``[tool.otelperf]`` found from the cwd upwards;
see :mod:`otelperf.budgets`).

Bad values produce one clear message naming the setting and what it accepts. With ``strict=True``
that message is raised as :class:`ConfigError`; otherwise it is logged as a warning and the setting
falls back to its default, because a typo in an environment variable must not take a service down.
"""

from __future__ import annotations

import logging
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ConfigError", "Settings", "resolve_settings"]

logger = logging.getLogger("otelperf.config")

PROTOCOLS = ("http/protobuf", "grpc")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
KNOWN_INSTRUMENTATIONS = ("fastapi", "sqlalchemy", "sqlalchemy_pool", "redis", "httpx", "requests")
KNOWN_DETECTORS = ("slow_query", "n_plus_one", "latency_budget", "cache", "sequential_awaits")
DEFAULT_PORTS = {"http/protobuf": 4318, "grpc": 4317}
EXCEPTION_MESSAGE_MODES = ("keep", "redact", "drop")


class ConfigError(ValueError):
    """A setting has a value otelperf cannot use. The message names the setting and the accepted values."""


@dataclass(frozen=True)
class Settings:
    """The resolved configuration. Build it with :func:`resolve_settings`, not by hand."""

    service_name: str = "unknown_service"
    service_version: str | None = None
    environment: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    endpoint: str = "http://127.0.0.1:4318"
    traces_endpoint: str | None = None
    metrics_endpoint: str | None = None
    protocol: str = "http/protobuf"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # credentials, often
    export_timeout: float = 3.0
    shutdown_timeout: float = 5.0
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0
    disabled: bool = False
    instrument: tuple[str, ...] = KNOWN_INSTRUMENTATIONS
    capture_request_headers: tuple[str, ...] = ()
    asgi_message_spans: bool = False
    legacy_attributes: bool = False
    detectors: tuple[str, ...] = KNOWN_DETECTORS
    slow_query_ms: float = 100.0
    slow_query_critical_ms: float = 1000.0
    explain: bool = True  # EXPLAIN slow PostgreSQL SELECTs once per fingerprint (detectors/explain.py)
    # The application's file, line and function (code.*) on each statement's span and in findings.
    call_sites: bool = True
    n_plus_one_min_count: int = 5
    n_plus_one_min_ms: float = 50.0
    sequential_awaits_min_count: int = 2  # independent reads awaited one after another...
    sequential_awaits_min_ms: float = 20.0  # ...that asyncio.gather would save at least this much of
    budgets: Mapping[str, float] = field(default_factory=dict)  # route (or "*") -> milliseconds
    budgets_file: str | None = None  # budgets file; None = search otelperf.toml/pyproject.toml; "none" = off
    export_share: float = 1.0
    flush_on_sigterm: bool = True  # flush before SIGTERM's default termination (_sigterm.py)
    max_queue_size: int = 8192
    max_export_batch_size: int = 512
    schedule_delay: float = 1.0
    retry_buffer: int = 64 * 1024 * 1024  # bytes of encoded spans kept for retry (export/)
    export_concurrency: int = 4  # OTLP span exports in flight at once
    metric_export_interval: float = 10.0
    # The sampling profiler of requests (otelperf/profiler/): where over-budget requests' app time went.
    profiler: bool = True
    profiler_hz: int = 100  # samples per second
    strict: bool = False
    # otelperf builds spans itself where the SDK adapter finds it equivalent (docs/internals.md);
    # False sends every span through Tracer.start_span/Span.end.
    sdk_fast_paths: bool = True
    # Redaction (docs/security.md): query parameters whose values are hidden, beyond the defaults
    # ("=" first replaces them, "-name" exempts, "*suffix" adds a suffix rule)...
    sensitive_query_params: tuple[str, ...] = ()
    # ...or an allow-list: when set, only these parameters keep their values (() = none does).
    query_params_allow: tuple[str, ...] | None = None
    exception_messages: str = "keep"  # keep | redact | drop: the application's exception messages
    # [[expected]] of the budgets file (not a setting of its own: it comes with budgets_file).
    expected_findings: tuple[Any, ...] = ()
    # Where each value came from ("kwarg", "OTELPERF_X", "OTEL_Y" or "default"), for `otelperf doctor`.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def full_traces_endpoint(self) -> str:
        if self.traces_endpoint:
            return self.traces_endpoint
        if self.protocol == "grpc":
            return self.endpoint
        return self.endpoint.rstrip("/") + "/v1/traces"

    def full_metrics_endpoint(self) -> str:
        if self.metrics_endpoint:
            return self.metrics_endpoint
        if self.protocol == "grpc":
            return self.endpoint
        return self.endpoint.rstrip("/") + "/v1/metrics"

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}
        # Header values are credentials more often than not.
        out["headers"] = {k: "<redacted>" for k in self.headers}
        return out


# --- parsers: each takes the raw value and returns the typed one or raises ValueError(accepted) ---


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("true or false")


def _parse_duration(raw: Any, bare_unit_s: float, accepted: str) -> float:
    """A non-negative duration in seconds: a bare number is in ``bare_unit_s``; a string may carry
    a unit ('250ms', '5s', '1m')."""
    if isinstance(raw, bool):
        raise ValueError(accepted)
    if isinstance(raw, int | float):
        value = float(raw) * bare_unit_s
    else:
        text = str(raw).strip().lower()
        scale = bare_unit_s
        for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
            if text.endswith(suffix):
                text, scale = text[: -len(suffix)].strip(), factor
                break
        try:
            value = float(text) * scale
        except (ValueError, OverflowError):
            raise ValueError(accepted) from None
    # Here for settings without BOUNDS; the ones with bounds get their range checked as well.
    if not math.isfinite(value) or value < 0:
        raise ValueError(accepted)
    return value


def _parse_seconds(raw: Any) -> float:
    """Seconds as a number, or a string with a unit: '250ms', '5s', '1m'."""
    return _parse_duration(raw, 1.0, "a non-negative duration such as 5, '5s' or '250ms'")


def _parse_millis_env(raw: Any) -> float:
    """OTEL_* timeouts and intervals are numbers of milliseconds by the spec."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError("a non-negative number of milliseconds") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("a non-negative number of milliseconds")
    return value / 1000.0


def _parse_positive_int(raw: Any) -> int:
    """A whole number above 0 (settings with BOUNDS get their range checked as well)."""
    if isinstance(raw, bool):
        raise ValueError("a positive whole number")
    try:
        value = raw if isinstance(raw, int) else int(str(raw).strip())
    except ValueError:  # also Python's limit on the digits of an int
        raise ValueError("a positive whole number") from None
    if value <= 0:
        raise ValueError("a positive whole number")
    return value


def _parse_protocol(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text == "http":
        text = "http/protobuf"
    if text not in PROTOCOLS:
        raise ValueError(" or ".join(repr(p) for p in PROTOCOLS))
    return text


def _parse_endpoint(raw: Any) -> str:
    text = str(raw).strip()
    accepted = "a URL such as http://127.0.0.1:4318 (scheme http or https, a host, an optional port)"
    try:
        parsed = urllib.parse.urlsplit(text)
        port = parsed.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise ValueError(accepted) from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(accepted)
    del port
    return text


def _parse_sampler(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in SAMPLERS:
        raise ValueError(", ".join(SAMPLERS))
    return text


def _parse_ratio(raw: Any) -> float:
    accepted = "a number from 0 to 1"
    if isinstance(raw, bool):
        raise ValueError(accepted)
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError(accepted) from None
    if not 0.0 <= value <= 1.0:  # NaN too
        raise ValueError(accepted)
    return value


def _parse_kv_list(raw: Any) -> dict[str, str]:
    """W3C-baggage-like 'k=v,k2=v2' (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS)."""
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for item in str(raw).split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError("comma-separated key=value pairs, e.g. 'team=shop,region=eu'")
        out[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(value.strip())
    return out


# RFC 9110 token: what an HTTP header name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # printable Latin-1, as HTTP/1.1 sends it


def _parse_headers(raw: Any) -> dict[str, str]:
    """Export headers, 'k=v,k2=v2': names must be HTTP tokens and values printable Latin-1, or every
    export would fail on them later."""
    accepted = "comma-separated name=value pairs of HTTP headers, e.g. 'authorization=Bearer%20abc'"
    headers = _parse_kv_list(raw)
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
            raise ValueError(accepted)
    return headers


def _parse_header_names(raw: Any) -> tuple[str, ...]:
    names = _parse_names(raw)
    if any(not _TOKEN.fullmatch(n) for n in names):
        raise ValueError("a comma-separated list of HTTP header names, e.g. 'x-request-id,user-agent'")
    return names


def _parse_names(raw: Any) -> tuple[str, ...]:
    items = list(raw) if isinstance(raw, list | tuple | set | frozenset) else str(raw).split(",")
    return tuple(str(i).strip().lower() for i in items if str(i).strip())


def _parse_instrument(raw: Any) -> tuple[str, ...]:
    names = _parse_names(raw)
    if names in (("all",), ()):
        return KNOWN_INSTRUMENTATIONS if names else ()
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in KNOWN_INSTRUMENTATIONS]
    if unknown:
        raise ValueError("'all', 'none' or a comma-separated list of " + ", ".join(KNOWN_INSTRUMENTATIONS))
    return names


def _parse_semconv_opt_in(raw: Any) -> bool:
    """OTEL_SEMCONV_STABILITY_OPT_IN: 'database/dup' asks for the old attribute names as well."""
    return "database/dup" in [part.strip().lower() for part in str(raw).split(",")]


def _parse_detectors(raw: Any) -> tuple[str, ...]:
    names = _parse_names(raw)
    if names in (("all",), ()):
        return KNOWN_DETECTORS if names else ()
    if names == ("none",):
        return ()
    if any(n not in KNOWN_DETECTORS for n in names):
        raise ValueError("'all', 'none' or a comma-separated list of " + ", ".join(KNOWN_DETECTORS))
    return names


def _parse_millis(raw: Any) -> float:
    """Milliseconds as a number, or a string with a unit: 250, '250ms', '1.5s', '2m'."""
    return 1000.0 * _parse_duration(raw, 0.001, "a non-negative duration such as 250, '250ms' or '1s'")


def _parse_budgets(raw: Any) -> dict[str, float]:
    """Route budgets: a mapping, JSON, or 'GET /orders/{id}=200ms,*=500ms'."""
    accepted = "route=duration pairs, e.g. 'GET /orders/{id}=200ms,*=500ms', or a JSON object"
    if isinstance(raw, Mapping):
        items = list(raw.items())
    else:
        text = str(raw).strip()
        if text.startswith("{"):
            import json

            try:
                loaded = json.loads(text)
            except ValueError:
                raise ValueError(accepted) from None
            if not isinstance(loaded, dict):
                raise ValueError(accepted)
            items = list(loaded.items())
        else:
            items = []
            for part in text.split(","):
                if not part.strip():
                    continue
                route, sep, value = part.rpartition("=")
                if not sep or not route.strip():
                    raise ValueError(accepted)
                items.append((route.strip(), value.strip()))
    try:
        return {str(route): _parse_millis(value) for route, value in items}
    except ValueError:
        raise ValueError(accepted) from None


def _parse_query_param_names(raw: Any) -> tuple[str, ...]:
    """Query parameter names: 'ticket,*_ref,-page_token', '=token,sig' (replace the defaults)."""
    accepted = "comma-separated parameter names ('name', '*suffix', '-name'; '=' first replaces the defaults)"
    items = list(raw) if isinstance(raw, list | tuple | set | frozenset) else str(raw).split(",")
    names = [str(i).strip() for i in items if str(i).strip()]
    if names and names[0].startswith("=") and names[0] != "=":
        names[:1] = ["=", names[0][1:].strip()]
    for index, name in enumerate(names):
        if (name.startswith("=") and index != 0) or any(c.isspace() or c in "&#?" for c in name):
            raise ValueError(accepted)
        if name in ("-", "*"):
            raise ValueError(accepted)
    return tuple(names)


def _parse_query_allow(raw: Any) -> tuple[str, ...]:
    """An allow-list of query parameter names; 'none' keeps no value at all."""
    if isinstance(raw, str) and raw.strip().lower() == "none":
        return ()
    names = _parse_query_param_names(raw)
    if any(n.startswith(("=", "-", "*")) for n in names):
        raise ValueError("comma-separated parameter names, or 'none'")
    return names


def _parse_exception_messages(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in EXCEPTION_MESSAGE_MODES:
        raise ValueError(" or ".join(repr(m) for m in EXCEPTION_MESSAGE_MODES))
    return text


RETRY_BUFFER_MIN = 64 * 1024
RETRY_BUFFER_MAX = 4 * 1024**3
_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def _parse_retry_buffer(raw: Any) -> int:
    """A size in bytes: 67108864, '64MiB', '512KiB', '1GiB', '64MB'; between 64 KiB and 4 GiB."""
    accepted = "a size between 64KiB and 4GiB, such as '64MiB', '512KiB' or a number of bytes"
    if isinstance(raw, bool):
        raise ValueError(accepted)
    text = str(raw).strip().lower().replace(" ", "")
    number = text.rstrip("kmgib")
    unit = text[len(number) :]
    if unit not in _BYTE_UNITS:
        raise ValueError(accepted)
    try:
        value = float(number) * _BYTE_UNITS[unit]
    except ValueError:
        raise ValueError(accepted) from None
    if not math.isfinite(value) or not RETRY_BUFFER_MIN <= value <= RETRY_BUFFER_MAX:
        raise ValueError(accepted)
    return int(value)


def _parse_export_concurrency(raw: Any) -> int:
    try:
        value = _parse_positive_int(raw)
    except ValueError:
        raise ValueError("a whole number from 1 to 32") from None
    if value > 32:
        raise ValueError("a whole number from 1 to 32")
    return value


def _parse_str(raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        raise ValueError("a non-empty string")
    return text


# --- bounds: the accepted range of every numeric setting, in its resolved unit ---


@dataclass(frozen=True)
class Bounds:
    """The accepted range of a numeric setting (seconds for ``unit="s"``, milliseconds for ``"ms"``).

    >>> BOUNDS["schedule_delay"].describe()
    'from 1 ms to 1 h'
    """

    low: float
    high: float
    unit: str = ""  # "s", "ms", "B" (bytes), or "" for counts and fractions
    low_exclusive: bool = False  # "more than low": 0 would switch the feature into nonsense

    def contains(self, value: float) -> bool:
        # NaN compares false with everything, so it fails here; infinities are above any `high`.
        if self.low_exclusive:
            return self.low < value <= self.high
        return self.low <= value <= self.high

    def kind(self) -> str:
        if self.unit == "B":
            return "a size"
        if self.unit:
            return "a duration"
        return "a whole number" if isinstance(self.low, int) else "a number"

    def describe(self) -> str:
        low, high = self._show(self.low), self._show(self.high)
        if self.low_exclusive:
            return f"more than {low} and at most {high}"
        return f"from {low} to {high}"

    def _show(self, value: float) -> str:
        if value == 0:
            return "0"
        if not self.unit:
            return f"{value:,}" if isinstance(value, int) else f"{value:g}"
        if self.unit == "B":
            for unit_bytes, unit_name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
                if value >= unit_bytes:
                    return f"{value / unit_bytes:g} {unit_name}"
            return f"{value:g} B"
        seconds = value / 1000.0 if self.unit == "ms" else value
        for size, name in ((3600.0, "h"), (60.0, "min"), (1.0, "s")):
            if seconds >= size and seconds % size == 0:
                return f"{seconds / size:g} {name}"
        if seconds >= 1.0:
            return f"{seconds:g} s"
        return f"{seconds * 1000.0:g} ms"


_HOUR_MS = 3_600_000.0
# Keyed by setting name (not a column of _SPEC): a setting without an entry has no numeric range.
# Each bound keeps the value usable by what consumes it: the SDK refuses a zero interval, the
# standard library's waits overflow on huge timeouts, a queue of 10**20 would be allocated lazily
# until memory runs out.
BOUNDS: dict[str, Bounds] = {
    "export_timeout": Bounds(0.1, 300.0, "s"),
    "shutdown_timeout": Bounds(0.0, 600.0, "s"),
    "sampler_arg": Bounds(0.0, 1.0),
    "max_queue_size": Bounds(1, 1_000_000),
    "max_export_batch_size": Bounds(1, 1_000_000),  # and at most max_queue_size
    "schedule_delay": Bounds(0.001, 3600.0, "s"),  # an hour: batches sent only when full
    "metric_export_interval": Bounds(0.1, 86_400.0, "s"),
    "slow_query_ms": Bounds(0.0, _HOUR_MS, "ms", low_exclusive=True),
    "slow_query_critical_ms": Bounds(0.0, _HOUR_MS, "ms", low_exclusive=True),
    "n_plus_one_min_count": Bounds(2, 10_000),
    "n_plus_one_min_ms": Bounds(0.0, _HOUR_MS, "ms"),
    "sequential_awaits_min_count": Bounds(2, 1000),
    "sequential_awaits_min_ms": Bounds(0.0, _HOUR_MS, "ms"),
    "budgets": Bounds(0.0, _HOUR_MS, "ms", low_exclusive=True),  # each route's budget
    "export_share": Bounds(0.0, 1.0),
    "export_concurrency": Bounds(1, 32),
    "retry_buffer": Bounds(RETRY_BUFFER_MIN, RETRY_BUFFER_MAX, "B"),
    "profiler_hz": Bounds(1, 1000),
}


def _in_bounds(name: str, value: Any) -> bool:
    bounds = BOUNDS.get(name)
    if bounds is None:
        return True
    if isinstance(value, Mapping):
        return all(bounds.contains(v) for v in value.values())
    return bool(bounds.contains(value))


def accepted_values(name: str, parse_message: str | None = None) -> str:
    """What ``name`` accepts, as warnings and docs/configuration.md say it."""
    bounds = BOUNDS.get(name)
    if bounds is None:
        return parse_message or ""
    each = "each value " if name == "budgets" else ""
    if parse_message is None:
        return f"{each or bounds.kind() + ' '}{bounds.describe()}"
    if bounds.describe() in parse_message:
        return parse_message
    return f"{parse_message}, {each}{bounds.describe()}"


# (setting, OTELPERF_* variable, standard OTEL_* variable or None, parser for OTELPERF/kwarg,
#  parser for the OTEL_* variable when its format differs)
_Parser = Callable[[Any], Any]
_SPEC: tuple[tuple[str, str, str | None, _Parser, _Parser | None], ...] = (
    ("service_name", "OTELPERF_SERVICE_NAME", "OTEL_SERVICE_NAME", _parse_str, None),
    ("service_version", "OTELPERF_SERVICE_VERSION", None, _parse_str, None),
    ("environment", "OTELPERF_ENVIRONMENT", None, _parse_str, None),
    ("resource_attributes", "OTELPERF_RESOURCE_ATTRIBUTES", "OTEL_RESOURCE_ATTRIBUTES", _parse_kv_list, None),
    ("endpoint", "OTELPERF_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", _parse_endpoint, None),
    (
        "traces_endpoint",
        "OTELPERF_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        _parse_endpoint,
        None,
    ),
    (
        "metrics_endpoint",
        "OTELPERF_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        _parse_endpoint,
        None,
    ),
    ("protocol", "OTELPERF_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", _parse_protocol, None),
    ("headers", "OTELPERF_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS", _parse_headers, None),
    (
        "export_timeout",
        "OTELPERF_EXPORT_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        _parse_seconds,
        _parse_millis_env,
    ),
    ("shutdown_timeout", "OTELPERF_SHUTDOWN_TIMEOUT", None, _parse_seconds, None),
    ("sampler", "OTELPERF_SAMPLER", "OTEL_TRACES_SAMPLER", _parse_sampler, None),
    ("sampler_arg", "OTELPERF_SAMPLER_ARG", "OTEL_TRACES_SAMPLER_ARG", _parse_ratio, None),
    ("disabled", "OTELPERF_DISABLED", "OTEL_SDK_DISABLED", _parse_bool, None),
    ("instrument", "OTELPERF_INSTRUMENT", None, _parse_instrument, None),
    (
        "capture_request_headers",
        "OTELPERF_CAPTURE_REQUEST_HEADERS",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        _parse_header_names,
        None,
    ),
    ("asgi_message_spans", "OTELPERF_ASGI_MESSAGE_SPANS", None, _parse_bool, None),
    (
        "legacy_attributes",
        "OTELPERF_LEGACY_ATTRIBUTES",
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        _parse_bool,
        _parse_semconv_opt_in,
    ),
    ("max_queue_size", "OTELPERF_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE", _parse_positive_int, None),
    (
        "max_export_batch_size",
        "OTELPERF_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        _parse_positive_int,
        None,
    ),
    (
        "schedule_delay",
        "OTELPERF_SCHEDULE_DELAY",
        "OTEL_BSP_SCHEDULE_DELAY",
        _parse_seconds,
        _parse_millis_env,
    ),
    ("retry_buffer", "OTELPERF_RETRY_BUFFER", None, _parse_retry_buffer, None),
    ("export_concurrency", "OTELPERF_EXPORT_CONCURRENCY", None, _parse_export_concurrency, None),
    (
        "metric_export_interval",
        "OTELPERF_METRIC_EXPORT_INTERVAL",
        "OTEL_METRIC_EXPORT_INTERVAL",
        _parse_seconds,
        _parse_millis_env,
    ),
    ("detectors", "OTELPERF_DETECTORS", None, _parse_detectors, None),
    ("slow_query_ms", "OTELPERF_SLOW_QUERY_MS", None, _parse_millis, None),
    ("slow_query_critical_ms", "OTELPERF_SLOW_QUERY_CRITICAL_MS", None, _parse_millis, None),
    ("explain", "OTELPERF_EXPLAIN", None, _parse_bool, None),
    ("call_sites", "OTELPERF_CALL_SITES", None, _parse_bool, None),
    ("n_plus_one_min_count", "OTELPERF_N_PLUS_ONE_MIN_COUNT", None, _parse_positive_int, None),
    ("n_plus_one_min_ms", "OTELPERF_N_PLUS_ONE_MIN_MS", None, _parse_millis, None),
    (
        "sequential_awaits_min_count",
        "OTELPERF_SEQUENTIAL_AWAITS_MIN_COUNT",
        None,
        _parse_positive_int,
        None,
    ),
    ("sequential_awaits_min_ms", "OTELPERF_SEQUENTIAL_AWAITS_MIN_MS", None, _parse_millis, None),
    ("budgets", "OTELPERF_BUDGETS", None, _parse_budgets, None),
    ("budgets_file", "OTELPERF_BUDGETS_FILE", None, _parse_str, None),
    ("export_share", "OTELPERF_EXPORT_SHARE", None, _parse_ratio, None),
    ("flush_on_sigterm", "OTELPERF_FLUSH_ON_SIGTERM", None, _parse_bool, None),
    ("strict", "OTELPERF_STRICT", None, _parse_bool, None),
    ("sdk_fast_paths", "OTELPERF_SDK_FAST_PATHS", None, _parse_bool, None),
    ("sensitive_query_params", "OTELPERF_SENSITIVE_QUERY_PARAMS", None, _parse_query_param_names, None),
    ("query_params_allow", "OTELPERF_QUERY_PARAMS_ALLOW", None, _parse_query_allow, None),
    ("exception_messages", "OTELPERF_EXCEPTION_MESSAGES", None, _parse_exception_messages, None),
    ("profiler", "OTELPERF_PROFILER", None, _parse_bool, None),
    ("profiler_hz", "OTELPERF_PROFILER_HZ", None, _parse_positive_int, None),
)
SETTING_NAMES = tuple(s[0] for s in _SPEC)


def _describe(name: str, source: str) -> str:
    return f"{name}= (keyword argument)" if source == "kwarg" else source


def resolve_settings(environ: Mapping[str, str] | None = None, **kwargs: Any) -> Settings:
    """Resolve every setting from keyword arguments, then the environment, then defaults."""
    env = os.environ if environ is None else environ
    unknown = sorted(k for k in kwargs if k not in SETTING_NAMES)
    if unknown:
        # A misspelt keyword is a programming error, not configuration drift: always raise.
        raise TypeError(
            f"otelperf.init() got unknown setting(s) {unknown}; accepted: {', '.join(SETTING_NAMES)}"
        )

    strict_raw = kwargs.get("strict", env.get("OTELPERF_STRICT", "false"))
    try:
        strict = _parse_bool(strict_raw)
    except ValueError:
        strict = False

    defaults = Settings()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[str] = []
    for name, own_var, std_var, parse, std_parse in _SPEC:
        candidates: list[tuple[str, Any, _Parser]] = []
        if kwargs.get(name) is not None:
            candidates.append(("kwarg", kwargs[name], parse))
        if own_var in env and env[own_var].strip() != "":
            candidates.append((own_var, env[own_var], parse))
        if std_var and std_var in env and env[std_var].strip() != "":
            candidates.append((std_var, env[std_var], std_parse or parse))
        for source, raw, parser in candidates[:1]:
            try:
                value = parser(raw)
                if not _in_bounds(name, value):
                    raise ValueError(None)
                values[name] = value
                sources[name] = source
            except (ValueError, TypeError, OverflowError) as exc:
                default = getattr(defaults, name)
                shown = _describe(name, source)
                expected = accepted_values(name, exc.args[0] if exc.args and exc.args[0] else None)
                problems.append(
                    f"invalid {shown}={raw!r}: expected {expected}; using the default {default!r}"
                )
        sources.setdefault(name, "default")
    _limit_batch_to_queue(defaults, values, sources, problems)

    _budgets_from_file(values, sources, problems)

    if problems:
        message = "otelperf configuration: " + "; ".join(problems)
        if strict:
            raise ConfigError(message)
        logger.warning(message)

    settings = Settings(**values, sources=sources)
    if settings.sources.get("endpoint") == "default" and settings.protocol == "grpc":
        settings = _replace(settings, endpoint=f"http://127.0.0.1:{DEFAULT_PORTS['grpc']}")
    return settings


def _budgets_from_file(values: dict[str, Any], sources: dict[str, str], problems: list[str]) -> None:
    """Latency budgets (p95 per route) from the budgets file, when neither kwarg nor env gave them:
    the detector then judges requests by the same numbers as the alerts and the load tests. The
    file's ``[[expected]]`` findings are taken in any case."""
    from otelperf.budgets import BudgetError, load_budgets

    wanted = values.get("budgets_file")
    if wanted is not None and wanted.lower() == "none":
        return
    try:
        budgets = load_budgets(wanted)
        from_file = budgets.latency_budgets_ms()
    except (BudgetError, OSError, ValueError) as exc:  # unreadable, a directory, an odd path...
        problems.append(f"invalid budgets file: {exc}; using no latency budgets")
        return
    if budgets.expected:
        values["expected_findings"] = budgets.expected
    if budgets.source is not None and sources["budgets"] == "default":
        if not _in_bounds("budgets", from_file):
            problems.append(
                f"invalid budgets file {budgets.source}: expected {accepted_values('budgets')}; "
                "using no latency budgets"
            )
            return
        values["budgets"] = from_file
        sources["budgets"] = f"file {budgets.source}"


def _limit_batch_to_queue(
    defaults: Settings, values: dict[str, Any], sources: dict[str, str], problems: list[str]
) -> None:
    """A batch cannot be larger than the queue it is taken from (the SDK raises on that)."""
    queue = values.get("max_queue_size", defaults.max_queue_size)
    batch = values.get("max_export_batch_size", defaults.max_export_batch_size)
    if batch <= queue:
        return
    values["max_export_batch_size"] = queue
    source = sources.get("max_export_batch_size", "default")
    if source != "default":  # asked for explicitly: say so; a default batch just follows the queue
        shown = _describe("max_export_batch_size", source)
        problems.append(f"{shown}={batch} is larger than max_queue_size={queue}; using {queue}")


def _replace(settings: Settings, **changes: Any) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **changes)
