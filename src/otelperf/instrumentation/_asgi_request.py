"""Pieces of the ASGI middleware that read the request: span attributes, host, route templates."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from otelperf import _names
from otelperf._redact import redact_query

DEFAULT_PORTS = {"http": 80, "https": 443}


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
        address, port = split_host(host.decode("latin-1"), scheme)
        if address:
            attrs[_names.SERVER_ADDRESS] = address
            if port is not None:
                attrs[_names.SERVER_PORT] = port
    elif scope.get("server"):
        attrs[_names.SERVER_ADDRESS] = scope["server"][0]
        if scope["server"][1] is not None:
            attrs[_names.SERVER_PORT] = scope["server"][1]
    return attrs


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


def effective_path(scope: Mapping[str, Any]) -> str | None:
    """FastAPI >= 0.16x keeps an included router's full template (all prefixes) here."""
    fastapi_scope = scope.get("fastapi")
    if not isinstance(fastapi_scope, dict):
        return None
    path = getattr(fastapi_scope.get("effective_route_context"), "path_format", None)
    return path if isinstance(path, str) else None


def is_mount(route: Any) -> bool:
    routing = sys.modules.get("starlette.routing")
    return routing is not None and isinstance(route, routing.Mount)


def find_prefix(routes: Any, target: Any, prefix: str, depth: int) -> str | None:
    if depth > 8:
        return None
    routing = sys.modules.get("starlette.routing")
    for candidate in routes:
        if candidate is target:
            return prefix
        if routing is None:
            continue
        if isinstance(candidate, routing.Mount):
            mount_path = candidate.path_format.removesuffix("/{path}")
            found = find_prefix(candidate.routes, target, prefix + mount_path, depth + 1)
        elif isinstance(candidate, routing.Host):
            found = find_prefix(candidate.routes, target, prefix, depth + 1)
        else:
            continue
        if found is not None:
            return found
    return None
