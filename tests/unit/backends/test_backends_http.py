"""The shared HTTP helper: loopback without proxies, and failures that name the URL."""

from __future__ import annotations

import socket

import pytest
from tests.unit.backends.fake_backend import closed_port_url, fake_backend

from otelperf.backends import (
    BackendBadAnswer,
    BackendError,
    BackendHTTPError,
    BackendUnreachable,
    get_json,
    get_text,
)


def test_json_and_text_answers_with_query_parameters() -> None:
    with fake_backend({"/doc": (200, {"a": [1, 2]}), "/text": (200, "plain\n")}) as backend:
        assert get_json(backend.url + "/doc", {"q": "sum(x) by (y)"}) == {"a": [1, 2]}
        assert get_text(backend.url + "/text") == "plain\n"
    assert backend.asked == [("/doc", {"q": "sum(x) by (y)"}), ("/text", {})]


def test_a_proxy_in_the_environment_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, closed_port_url())
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with fake_backend({"/doc": (200, {"ok": True})}) as backend:
        assert get_json(backend.url + "/doc") == {"ok": True}


def test_unreachable_names_the_url_and_is_an_oserror() -> None:
    url = closed_port_url() + "/api/v1/query"
    with pytest.raises(BackendUnreachable) as caught:
        get_json(url, {"query": "up"})
    assert str(caught.value).startswith(f"cannot reach {url}: ")
    assert "Connection refused" in str(caught.value)
    assert caught.value.url == url + "?query=up"
    assert isinstance(caught.value, OSError)  # callers that catch OSError keep working


def test_a_backend_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v3/traces"
        with pytest.raises(BackendUnreachable, match=r"^no answer from .*/api/v3/traces within 0.3 s$"):
            get_json(url, timeout=0.3)


def test_not_json_is_a_bad_answer() -> None:
    with (
        fake_backend({"/": (200, "<html>Grafana</html>")}) as backend,
        pytest.raises(BackendBadAnswer) as caught,
    ):
        get_json(backend.url + "/")
    assert str(caught.value) == f"{backend.url}/ did not answer JSON: '<html>Grafana</html>'"
    assert isinstance(caught.value, BackendError)


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_http_errors_carry_status_and_body(status: int) -> None:
    body = {"error": {"httpCode": status, "message": "search depth must be greater than 0"}}
    with (
        fake_backend({"/api/v3/traces": (status, body)}) as backend,
        pytest.raises(BackendHTTPError) as caught,
    ):
        get_json(backend.url + "/api/v3/traces", {"query.service_name": "shop"})
    error = caught.value
    assert error.status == status
    assert str(error).startswith(f"{backend.url}/api/v3/traces answered HTTP {status}: {{")
    assert "search depth must be greater than 0" in str(error)
    assert '"httpCode": ' in error.body
