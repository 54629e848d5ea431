"""Pieces of the ASGI middleware that read the request: span attributes, host, trace context.

(Route templates: :mod:`._asgi_routes`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otelperf import _names
from otelperf.profiler import _sampler as _profiler
from otelperf.redaction.url import redact_query

DEFAULT_PORTS = {"http": 80, "https": 443}
_W3C_HEADERS = frozenset((b"traceparent", b"tracestate", b"baggage"))
_MAX_CACHED_HOSTS = 256
_hosts: dict[tuple[bytes, str], tuple[str, int | None]] = {}
_w3c_only: tuple[object, bool] | None = None  # (propagator, is it the default W3C one)


def _is_default_w3c(propagator: object) -> bool:
    """True for OpenTelemetry's default propagator (W3C trace context, then W3C baggage): with
    none of its headers in a request, its ``extract`` returns an empty context."""
    inner = getattr(propagator, "_propagators", None) if type(propagator) is CompositePropagator else None
    if not inner or type(inner[0]) is not TraceContextTextMapPropagator:
        return False  # the first one turns "no context given" into an empty one; others may not
    return all(type(p) in (TraceContextTextMapPropagator, W3CBaggagePropagator) for p in inner)


def extract_parent(headers: Sequence[tuple[bytes, bytes]], getter: Getter[Any]) -> Context:
    """``propagate.extract`` of the request's headers, skipped when it cannot find anything: the
    default propagator and none of its headers (most requests from browsers and load balancers)."""
    global _w3c_only
    propagator = propagate.get_global_textmap()
    known = _w3c_only
    if known is None or known[0] is not propagator:
        known = _w3c_only = (propagator, _is_default_w3c(propagator))
    if known[1]:
        for name, _ in headers:
            if name in _W3C_HEADERS:
                break
        else:
            return Context()
    return propagator.extract(headers, getter=getter)


def request_attributes(
    capture: Mapping[bytes, str],
    scope: Mapping[str, Any],
    headers: Sequence[tuple[bytes, bytes]],
    *,
    method: str,
    raw: str,
    scheme: str,
) -> dict[str, Any]:
    """The SERVER span's attributes at its start (stable HTTP semantic conventions)."""
    attrs: dict[str, Any] = {
        _names.HTTP_REQUEST_METHOD: method,
        _names.URL_SCHEME: scheme,
        _names.URL_PATH: scope.get("path", ""),
    }
    if method == "_OTHER":
        attrs[_names.HTTP_REQUEST_METHOD_ORIGINAL] = raw
    query: bytes = scope.get("query_string") or b""
    if query:
        attrs[_names.URL_QUERY] = redact_query(query.decode("latin-1"))
    version = scope.get("http_version")
    if version:
        attrs[_names.NETWORK_PROTOCOL_VERSION] = version
    client = scope.get("client")
    if client:
        attrs[_names.CLIENT_ADDRESS] = client[0]
    host: bytes | None = None
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"user-agent":
            attrs[_names.USER_AGENT_ORIGINAL] = value.decode("latin-1")
        if capture and name in capture:
            key = _names.HTTP_REQUEST_HEADER_PREFIX + capture[name]
            attrs.setdefault(key, []).append(value.decode("latin-1"))
    if capture:  # lists while collecting; spans keep sequences as tuples
        for key, value in attrs.items():
            if type(value) is list:
                attrs[key] = tuple(value)
    if host is not None:
        address, port = _split_host_cached(host, scheme)
        if address:
            attrs[_names.SERVER_ADDRESS] = address
            if port is not None:
                attrs[_names.SERVER_PORT] = port
    elif scope.get("server"):
        attrs[_names.SERVER_ADDRESS] = scope["server"][0]
        if scope["server"][1] is not None:
            attrs[_names.SERVER_PORT] = scope["server"][1]
    return attrs


def _split_host_cached(host: bytes, scheme: str) -> tuple[str, int | None]:
    key = (host, scheme)
    found = _hosts.get(key)
    if found is None:
        found = split_host(host.decode("latin-1"), scheme)
        if len(_hosts) < _MAX_CACHED_HOSTS:  # a service answers to a few names; the rest: computed
            _hosts[key] = found
    return found


def split_host(host: str, scheme: str) -> tuple[str, int | None]:
    if host.startswith("["):  # [::1]:8000
        end = host.find("]")
        address, rest = host[1:end], host[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        address, _, port_text = host.partition(":")
    if port_text.isdigit():
        return address, int(port_text)
    return address, DEFAULT_PORTS.get(scheme)


# The sampling profiler's registration (otelperf/profiler/): the request's task and thread, while
# it runs. None when the profiler is off or does not follow this request.
profile_begin = _profiler.begin
profile_end = _profiler.end
