"""Remove credentials from URLs before they become span attributes.

Two things are redacted, following the HTTP semantic conventions:

- ``user:password@`` in the authority becomes ``REDACTED:REDACTED@``;
- the value of a query parameter that carries a signature or a credential (``sig``,
  ``X-Amz-Signature``, ``token``, ``api_key``, ... compared case-insensitively) becomes ``REDACTED``.

Everything else is kept byte for byte (no re-encoding), so a redacted URL differs from the
original only where a secret was. The parsing is done by hand rather than with ``urllib.parse``
because a malformed URL must still come out redacted instead of raising.

>>> redact_url("https://u:p@example.com/x?token=abc&page=2")
'https://REDACTED:REDACTED@example.com/x?token=REDACTED&page=2'
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote_plus

__all__ = ["SENSITIVE_QUERY_PARAMETERS", "redact_query", "redact_url"]

REDACTED = "REDACTED"

SENSITIVE_QUERY_PARAMETERS: frozenset[str] = frozenset(
    {
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "secret",
        "client_secret",
        "code",
        "auth",
    }
)

# URLs repeat (the same endpoints are called over and over); a bounded LRU keeps the parse off
# the hot path without letting unique URLs grow memory.
_CACHE_SIZE = 2048


def redact_url(url: str) -> str:
    """Return ``url`` with userinfo and credential query values replaced by ``REDACTED``."""
    if "@" not in url and "?" not in url:
        return url
    return _redact_url_cached(url)


def redact_query(query: str) -> str:
    """Redact the values of credential parameters in a query string (without the leading ``?``)."""
    if not query:
        return query
    return _redact_query_cached(query)


@lru_cache(maxsize=_CACHE_SIZE)
def _redact_url_cached(url: str) -> str:
    # Fragment first: nothing after '#' is query or authority.
    fragment_at = url.find("#")
    head, fragment = (url, "") if fragment_at < 0 else (url[:fragment_at], url[fragment_at:])
    query_at = head.find("?")
    before_query, query = (head, None) if query_at < 0 else (head[:query_at], head[query_at + 1 :])

    scheme_end = before_query.find("//")
    if scheme_end >= 0:
        authority_start = scheme_end + 2
        path_at = before_query.find("/", authority_start)
        authority_end = len(before_query) if path_at < 0 else path_at
        authority = before_query[authority_start:authority_end]
        at = authority.rfind("@")
        if at >= 0:
            before_query = (
                before_query[:authority_start]
                + "REDACTED:REDACTED@"
                + authority[at + 1 :]
                + before_query[authority_end:]
            )

    if query is None:
        return before_query + fragment
    return before_query + "?" + _redact_query_cached(query) + fragment


@lru_cache(maxsize=_CACHE_SIZE)
def _redact_query_cached(query: str) -> str:
    parts = query.split("&")
    changed = False
    for index, part in enumerate(parts):
        name, sep, _value = part.partition("=")
        if sep and _is_sensitive(name):
            parts[index] = name + "=" + REDACTED
            changed = True
    return "&".join(parts) if changed else query


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    if lowered in SENSITIVE_QUERY_PARAMETERS:
        return True
    # Percent-encoded names ('X%2DAmz%2DSignature') are rare; decode only when needed.
    return ("%" in name or "+" in name) and unquote_plus(lowered).strip() in SENSITIVE_QUERY_PARAMETERS
