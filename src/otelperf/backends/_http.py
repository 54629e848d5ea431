"""The one HTTP helper behind the backend clients: GET with a timeout, never through a proxy.

The backends are on loopback: an ``http_proxy`` from the environment would not reach 127.0.0.1
and must not see the queries, so the opener has an empty ``ProxyHandler``. Every failure is a
:class:`BackendError` naming the URL it could not read.

    >>> get_json("http://127.0.0.1:9090/api/v1/query", {"query": "up"})  # doctest: +SKIP
    {'status': 'success', 'data': {'resultType': 'vector', 'result': [...]}}
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

__all__ = [
    "BackendBadAnswer",
    "BackendError",
    "BackendHTTPError",
    "BackendUnreachable",
    "get_json",
    "get_text",
]

DEFAULT_TIMEOUT_S = 10.0
# Enough of an error body to say why (Prometheus' "parse error at char 12", Jaeger's "not found").
_BODY_EXCERPT = 500

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BackendError(OSError):
    """A backend could not be read; ``url`` is what was asked.

    An ``OSError``, as urllib's own ``URLError`` is, so callers that already treat "the backend
    did not answer" as ``OSError`` keep working.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class BackendUnreachable(BackendError):
    """No HTTP answer: connection refused, timeout, DNS, connection reset."""


class BackendHTTPError(BackendError):
    """The backend answered with an HTTP error status; ``body`` is the start of what it said."""

    def __init__(self, message: str, *, url: str, status: int, body: str) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.body = body


class BackendBadAnswer(BackendError):
    """The backend answered 2xx, but not with what such a backend answers (not JSON, wrong shape)."""


def with_params(url: str, params: Mapping[str, str] | None) -> str:
    return f"{url}?{urllib.parse.urlencode(params)}" if params else url


def _where(url: str) -> str:
    # Error messages name the endpoint, not the (long, url-encoded) query string.
    return url.split("?", 1)[0]


def get_bytes(
    url: str, params: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT_S
) -> bytes:
    """The body of a 2xx answer to ``GET url?params``; BackendError otherwise."""
    full = with_params(url, params)
    try:
        with _OPENER.open(full, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(_BODY_EXCERPT * 4).decode("utf-8", errors="replace")
        except OSError:
            text = ""
        finally:
            exc.close()
        excerpt = " ".join(text.split())[:_BODY_EXCERPT]
        raise BackendHTTPError(
            f"{_where(url)} answered HTTP {exc.code}" + (f": {excerpt}" if excerpt else ""),
            url=full,
            status=exc.code,
            body=text,
        ) from None
    except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: a malformed URL
        reason = getattr(exc, "reason", exc)  # URLError wraps the socket's error
        if isinstance(reason, TimeoutError):
            message = f"no answer from {_where(url)} within {timeout:g} s"
        else:
            message = f"cannot reach {_where(url)}: {reason}"
        raise BackendUnreachable(message, url=full) from None


def get_text(url: str, params: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """The body of a 2xx answer, as text (undecodable bytes replaced)."""
    return get_bytes(url, params, timeout=timeout).decode("utf-8", errors="replace")


def get_json(url: str, params: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """The JSON document of a 2xx answer; BackendBadAnswer when the body is not JSON."""
    body = get_bytes(url, params, timeout=timeout)
    return parse_json(body, url=with_params(url, params))


def parse_json(body: bytes | str, *, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        start = body[:80] if isinstance(body, str) else body[:80].decode("utf-8", errors="replace")
        raise BackendBadAnswer(f"{_where(url)} did not answer JSON: {start!r}", url=url) from None
