"""Which query parameters lose their values: the default rules, the settings, the allow-list."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from otelperf import redaction
from otelperf.config import ConfigError, resolve_settings
from otelperf.redaction.url import QueryPolicy, query_policy, redact_query, redact_url

# The names issue 12 found passing through, and their usual kin.
SENSITIVE = [
    "api-key", "x-api-key", "refresh_token", "id_token", "jwt", "session", "sessionid", "auth_token",
    "passwd", "private_token", "client_secret", "access-token", "accesstoken", "auth", "authorization",
    "bearer", "credential", "credentials", "pass", "pwd", "passphrase", "secret", "app_secret",
    "github_token", "api_key", "private_key", "secret_key", "sig", "signature", "X-Amz-Signature",
    "X-Amz-Credential", "X-Amz-Security-Token", "session_id", "JSESSIONID", "PHPSESSID", "csrf",
    "xsrf_token", "otp", "code", "password", "db-password", "token", "key", "apikey", "AccessKey",
    "refreshToken", "clientSecret", "user_pass", "X-Goog-Signature", "AWSAccessKeyId",
]  # fmt: skip
NOT_SENSITIVE = [
    "page", "q", "sort", "monkey", "hockey", "turkey", "bypass", "keyboard", "tokens", "country_code",
    "zip_code", "passenger", "secretary_name", "session_count", "limit", "author", "codec",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    redaction.configure()
    yield
    redaction.configure()


@pytest.mark.parametrize("name", SENSITIVE)
def test_sensitive_names_are_redacted_in_any_spelling(name: str) -> None:
    for spelling in (name, name.upper(), name.replace("_", "-"), name.replace("-", "_")):
        url = f"https://h.example/p?{spelling}=canary-v&page=2"
        assert redact_url(url) == f"https://h.example/p?{spelling}=REDACTED&page=2"
        assert redact_query(f"{spelling}=canary-v") == f"{spelling}=REDACTED"


@pytest.mark.parametrize("name", NOT_SENSITIVE)
def test_ordinary_names_keep_their_values(name: str) -> None:
    assert redact_query(f"{name}=v1&x=2") == f"{name}=v1&x=2"


def test_percent_encoded_name_is_decoded_before_the_check() -> None:
    assert redact_query("x%2Dapi%2Dkey=v") == "x%2Dapi%2Dkey=REDACTED"


def test_added_names_suffixes_and_exemptions() -> None:
    redaction.configure(resolve_settings(environ={}, sensitive_query_params="ticket,*_ref,-page_token"))
    assert redact_query("ticket=a&order_ref=b&page_token=c&token=d&q=e") == (
        "ticket=REDACTED&order_ref=REDACTED&page_token=c&token=REDACTED&q=e"
    )


def test_a_leading_equals_sign_replaces_the_defaults() -> None:
    env = {"OTELPERF_SENSITIVE_QUERY_PARAMS": "=ticket,*_sig"}
    settings = resolve_settings(environ=env)
    assert settings.sensitive_query_params == ("=", "ticket", "*_sig")
    redaction.configure(settings)
    assert redact_query("ticket=a&my_sig=b&token=c") == "ticket=REDACTED&my_sig=REDACTED&token=c"
    # userinfo is never a matter of configuration
    assert redact_url("https://u:p@h/x?token=c") == "https://REDACTED:REDACTED@h/x?token=c"


def test_allow_list_redacts_every_parameter_not_listed() -> None:
    redaction.configure(resolve_settings(environ={"OTELPERF_QUERY_PARAMS_ALLOW": "page, Sort"}))
    assert redact_url("https://h/x?page=2&sort=asc&email=a%40b.c&utm=x") == (
        "https://h/x?page=2&sort=asc&email=REDACTED&utm=REDACTED"
    )
    assert redact_query("flag&page=1") == "flag&page=1"  # no value: nothing to hide


def test_allow_list_does_not_override_the_sensitive_rules() -> None:
    redaction.configure(resolve_settings(environ={}, query_params_allow=["page", "token"]))
    assert redact_query("page=1&token=t") == "page=1&token=REDACTED"


def test_allow_list_none_keeps_no_value() -> None:
    settings = resolve_settings(environ={"OTELPERF_QUERY_PARAMS_ALLOW": "none"})
    assert settings.query_params_allow == ()
    redaction.configure(settings)
    assert redact_query("page=1&q=x") == "page=REDACTED&q=REDACTED"


def test_changing_the_policy_resets_the_caches() -> None:
    url = "https://h/x?ticket=t1"
    assert redact_url(url) == url  # now cached under the default policy
    redaction.configure(resolve_settings(environ={}, sensitive_query_params="ticket"))
    assert redact_url(url) == "https://h/x?ticket=REDACTED"
    redaction.configure()
    assert redact_url(url) == url
    assert query_policy() == QueryPolicy()


@pytest.mark.parametrize("bad", ["a,=b", "a b", "x&y", "-", "*"])
def test_bad_values_are_rejected_with_a_clear_message(bad: str) -> None:
    with pytest.raises(ConfigError, match="OTELPERF_SENSITIVE_QUERY_PARAMS"):
        resolve_settings(environ={"OTELPERF_SENSITIVE_QUERY_PARAMS": bad, "OTELPERF_STRICT": "1"})
    with pytest.raises(ConfigError, match="OTELPERF_QUERY_PARAMS_ALLOW"):
        resolve_settings(environ={"OTELPERF_QUERY_PARAMS_ALLOW": "-page", "OTELPERF_STRICT": "1"})


def test_exception_messages_setting() -> None:
    assert resolve_settings(environ={}).exception_messages == "keep"
    assert resolve_settings(environ={"OTELPERF_EXCEPTION_MESSAGES": "DROP"}).exception_messages == "drop"
    with pytest.raises(ConfigError, match="OTELPERF_EXCEPTION_MESSAGES"):
        resolve_settings(environ={"OTELPERF_EXCEPTION_MESSAGES": "hide", "OTELPERF_STRICT": "1"})
