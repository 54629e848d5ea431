"""Remove credentials from URLs before they become span attributes.

Two things are redacted, following the HTTP semantic conventions:

- ``user:password@`` in the authority becomes ``REDACTED:REDACTED@``;
- the value of a query parameter whose name says it carries a credential becomes ``REDACTED``.

Whether a name is sensitive is decided on its normalized form: lower-case, percent-decoded, ``-``
read as ``_`` (``X-Api-Key``, ``x_api_key`` and ``X%2DAPI%2DKEY`` are one name). A name is
sensitive when it

- is one of :data:`SENSITIVE_QUERY_PARAMETERS` (``code``, ``auth``, ``sig``, ``session``, ``otp``...);
- ends in ``token``, ``secret``, ``password``, ``passwd``, ``passphrase``, ``signature``,
  ``credential(s)``, ``apikey``, ``accesskey``, ``privatekey``, ``secretkey``, ``sessionid`` or
  ``sessid``, glued or not (``refreshtoken``, ``client_secret``, ``X-Amz-Security-Token``);
- equals or ends in ``_`` + one of ``key``, ``auth``, ``authorization``, ``session``, ``sid``,
  ``sig``, ``pass``, ``pwd``, ``jwt``, ``otp``, ``csrf``, ``xsrf``, ``bearer`` (``x_api_key``,
  ``private_key``, ``user_pass``): with a separator only, so ``monkey``, ``hockey`` and ``bypass``
  keep their values.

A false positive hides a harmless value (``page_token``, ``sort_key``); a false negative leaks a
credential, so the rules lean to the first. :func:`configure_query_policy` (the settings
``sensitive_query_params`` and ``query_params_allow``) adds names, exempts names, replaces the
defaults or switches to an allow-list. Everything else is kept byte for byte (no re-encoding), so
a redacted URL differs from the original only where a secret was. The parsing is done by hand
rather than with ``urllib.parse`` because a malformed URL must still come out redacted instead
of raising.

>>> redact_url("https://u:p@example.com/x?token=abc&page=2")
'https://REDACTED:REDACTED@example.com/x?token=REDACTED&page=2'
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_plus

__all__ = [
    "REDACTED",
    "SENSITIVE_QUERY_PARAMETERS",
    "QueryPolicy",
    "configure_query_policy",
    "is_sensitive_name",
    "query_policy",
    "redact_query",
    "redact_url",
]

REDACTED = "REDACTED"

# Normalized names (lower-case, "-" as "_") whose values are always redacted by default.
SENSITIVE_QUERY_PARAMETERS: frozenset[str] = frozenset(
    {
        "sig",
        "signature",
        "token",
        "key",
        "apikey",
        "api_key",
        "access_token",
        "accesstoken",
        "refresh_token",
        "id_token",
        "auth",
        "authorization",
        "auth_token",
        "bearer",
        "jwt",
        "credential",
        "credentials",
        "pass",
        "passwd",
        "password",
        "pwd",
        "passphrase",
        "secret",
        "client_secret",
        "private_token",
        "session",
        "sessionid",
        "session_id",
        "sid",
        "csrf",
        "xsrf",
        "otp",
        "totp",
        "code",
        "auth_code",
        "authorization_code",
        "x_amz_signature",
        "x_amz_credential",
        "x_amz_security_token",
        "x_goog_signature",
        "x_goog_credential",
        "awsaccesskeyid",
    }
)
# Any name ending in one of these, glued to the rest or not.
DEFAULT_SUFFIXES: tuple[str, ...] = (
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "signature",
    "credential",
    "credentials",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "sessionid",
    "sessid",
)
# Any name equal to one of these or ending in "_" + one of these (a separator is required: the
# glued form would catch "monkey", "bypass", "kissig"...).
DEFAULT_WORD_SUFFIXES: tuple[str, ...] = (
    "key",
    "auth",
    "authorization",
    "session",
    "sid",
    "sig",
    "pass",
    "pwd",
    "jwt",
    "otp",
    "csrf",
    "xsrf",
    "bearer",
)


def normalize_name(name: str) -> str:
    """The form names are compared in: ``"X-Api%2DKey "`` -> ``"x_api_key"``."""
    lowered = name.lower()
    if "%" in lowered or "+" in lowered:
        lowered = unquote_plus(lowered)
    return lowered.strip().replace("-", "_")


@dataclass(frozen=True)
class QueryPolicy:
    """Which query parameter values are redacted (see the module docstring for the defaults).

    ``names``/``suffixes``/``word_suffixes`` are the sensitive rules; ``exempt`` names are never
    sensitive by those rules; ``allow``, when not None, is an allow-list: a value is kept only
    when its name is listed there and is not sensitive.
    """

    names: frozenset[str] = SENSITIVE_QUERY_PARAMETERS
    suffixes: tuple[str, ...] = DEFAULT_SUFFIXES
    word_suffixes: tuple[str, ...] = DEFAULT_WORD_SUFFIXES
    exempt: frozenset[str] = frozenset()
    allow: frozenset[str] | None = None

    @classmethod
    def from_settings(cls, sensitive: Iterable[str] = (), allow: Iterable[str] | None = None) -> QueryPolicy:
        """Build a policy from the settings' lists.

        ``sensitive`` items: ``name`` adds a name, ``*suffix`` adds a suffix rule (glued or not),
        ``-name`` exempts a name from the rules; a first item ``=`` drops the default rules.

        >>> QueryPolicy.from_settings(["=", "ticket", "*_ref"]).is_sensitive("order_ref")
        True
        >>> QueryPolicy.from_settings(["-page_token"]).is_sensitive("page-token")
        False
        """
        items = [item.strip() for item in sensitive if item.strip()]
        replace = bool(items) and items[0] == "="
        if replace:
            items = items[1:]
        names = set() if replace else set(SENSITIVE_QUERY_PARAMETERS)
        suffixes = [] if replace else list(DEFAULT_SUFFIXES)
        words = [] if replace else list(DEFAULT_WORD_SUFFIXES)
        exempt: set[str] = set()
        for item in items:
            if item.startswith("-"):
                exempt.add(normalize_name(item[1:]))
            elif item.startswith("*"):
                suffixes.append(normalize_name(item[1:]))
            else:
                names.add(normalize_name(item))
        return cls(
            names=frozenset(names),
            suffixes=tuple(s for s in suffixes if s),
            word_suffixes=tuple(words),
            exempt=frozenset(exempt),
            allow=None if allow is None else frozenset(normalize_name(a) for a in allow if a.strip()),
        )

    def is_sensitive(self, name: str) -> bool:
        """Whether the value of the parameter ``name`` (any spelling) is redacted by the rules."""
        normalized = normalize_name(name)
        if normalized in self.exempt:
            return False
        if normalized in self.names or normalized.endswith(self.suffixes):
            return True
        return any(normalized == w or normalized.endswith("_" + w) for w in self.word_suffixes)

    def redacts(self, name: str) -> bool:
        """Whether a value under ``name`` is redacted: the rules, then the allow-list."""
        if self.is_sensitive(name):
            return True
        return self.allow is not None and normalize_name(name) not in self.allow


_policy = QueryPolicy()
_policy_lock = threading.Lock()

# URLs repeat (the same endpoints are called over and over); a bounded LRU keeps the parse off
# the hot path without letting unique URLs grow memory.
_CACHE_SIZE = 2048


def query_policy() -> QueryPolicy:
    """The policy in force in this process."""
    return _policy


def configure_query_policy(policy: QueryPolicy | None = None) -> None:
    """Make ``policy`` (None: the defaults) the process's policy and forget cached results.

    Called once by ``otelperf.init()`` from the settings; every cache below depends on it.
    """
    global _policy
    with _policy_lock:
        _policy = policy if policy is not None else QueryPolicy()
        _redacts.cache_clear()
        _redact_url_cached.cache_clear()
        _redact_query_cached.cache_clear()


def is_sensitive_name(name: str) -> bool:
    """Whether a value under ``name`` is redacted by the process's policy (cached)."""
    return _redacts(name)


@lru_cache(maxsize=_CACHE_SIZE)
def _redacts(name: str) -> bool:
    return _policy.redacts(name)


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
        if sep and _redacts(name):
            parts[index] = name + "=" + REDACTED
            changed = True
    return "&".join(parts) if changed else query
