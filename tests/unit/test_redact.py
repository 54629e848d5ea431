from __future__ import annotations

import pytest

from otelperf.redaction.url import SENSITIVE_QUERY_PARAMETERS, _redact_url_cached, redact_query, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a/b", "https://example.com/a/b"),
        ("https://user:pw@example.com/x", "https://REDACTED:REDACTED@example.com/x"),
        ("https://user@example.com:8443", "https://REDACTED:REDACTED@example.com:8443"),
        ("http://a:b@c@host/p?q=1", "http://REDACTED:REDACTED@host/p?q=1"),
        ("https://example.com/x?token=abc&page=2", "https://example.com/x?token=REDACTED&page=2"),
        (
            "https://s3.amazonaws.com/b/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff&X-Amz-Expires=60",
            "https://s3.amazonaws.com/b/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=60",
        ),
        ("https://h/p?API_KEY=1&apikey=2&Sig=3", "https://h/p?API_KEY=REDACTED&apikey=REDACTED&Sig=REDACTED"),
        ("https://h/p?X%2DAmz%2DSignature=1", "https://h/p?X%2DAmz%2DSignature=REDACTED"),
        ("https://h/p?token=1#frag?token=2", "https://h/p?token=REDACTED#frag?token=2"),
        ("https://h/p?flag&token", "https://h/p?flag&token"),  # no value: nothing to hide
        ("https://h/users/@me?email=a@b.c", "https://h/users/@me?email=a@b.c"),  # '@' outside authority
        ("https://u:p@[::1]:8080/x?code=42", "https://REDACTED:REDACTED@[::1]:8080/x?code=REDACTED"),
        ("/relative/path?password=hunter2", "/relative/path?password=REDACTED"),
        ("http://[bad-ipv6/x?secret=s", "http://[bad-ipv6/x?secret=REDACTED"),  # malformed: still redacted
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_every_listed_parameter_is_redacted_case_insensitively() -> None:
    for name in SENSITIVE_QUERY_PARAMETERS:
        assert redact_query(f"{name.upper()}=v&keep=1") == f"{name.upper()}=REDACTED&keep=1"
    assert redact_query("keyboard=v&tokens=2") == "keyboard=v&tokens=2"


def test_fast_path_returns_the_same_object_without_touching_the_cache() -> None:
    url = "https://example.com/plain/path"
    before = _redact_url_cached.cache_info()
    assert redact_url(url) is url
    assert _redact_url_cached.cache_info() == before


def test_cache_is_bounded() -> None:
    for i in range(5000):
        redact_url(f"https://h/p?token={i}")
    info = _redact_url_cached.cache_info()
    assert info.maxsize is not None
    assert info.currsize <= info.maxsize
