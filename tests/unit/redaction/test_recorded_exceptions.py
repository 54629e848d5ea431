"""What otelperf's own instrumentation records when a request or a call fails, per setting."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from otelperf import redaction
from otelperf.testing import Capture, capture, stop_capture

CANARY = "cn4ry-rec"


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cap(request: pytest.FixtureRequest) -> Iterator[Capture]:
    settings: dict[str, Any] = getattr(request, "param", {})
    started = capture(**settings)
    try:
        yield started
    finally:
        stop_capture(started)
        redaction.configure()


def _app(closed_port: int) -> FastAPI:
    app = FastAPI()

    @app.get("/fail")
    def fail() -> None:
        raise LookupError(f"no customer '{CANARY}' (card 4111111111111111), token={CANARY}")

    @app.get("/handled")
    def handled() -> dict[str, bool]:
        try:
            raise ValueError(f"https://u:{CANARY}@billing.internal/charge?api-key={CANARY}")
        except ValueError as exc:
            trace.get_current_span().record_exception(exc)  # the app's own call, on otelperf's span
        return {"ok": True}

    @app.get("/call")
    def call_out() -> None:
        httpx.get(f"http://u:{CANARY}@127.0.0.1:{closed_port}/x?refresh_token={CANARY}&q=1")

    return app


async def _get(app: FastAPI, path: str) -> int:
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            return (await client.get(path)).status_code
    finally:
        otel_context.detach(token)


def _exception(span: Any) -> dict[str, Any]:
    [event] = [e for e in span.events if e.name == "exception"]
    return dict(event.attributes or {})


def _no_canary(cap: Capture) -> None:
    for span in cap.spans:
        texts = [str(span.status.description), *map(str, (span.attributes or {}).values())]
        texts += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        assert not [t for t in texts if CANARY in t], span.name


@pytest.mark.parametrize(
    ("cap", "message", "description"),
    [
        (
            {},
            "no customer 'cn4ry-rec' (card 4111111111111111), token=REDACTED",
            "LookupError: no customer 'cn4ry-rec' (card 4111111111111111), token=REDACTED",
        ),
        ({"exception_messages": "redact"}, "no customer '?' (card ?), token=REDACTED", None),
        ({"exception_messages": "drop"}, "LookupError", "LookupError"),
    ],
    indirect=["cap"],
)
async def test_server_span_of_a_failed_request(
    cap: Capture, closed_port: int, message: str, description: str | None
) -> None:
    assert await _get(_app(closed_port), "/fail") == 500
    [server] = [s for s in cap.spans if s.kind is SpanKind.SERVER]
    attributes = _exception(server)
    assert attributes["exception.type"] == "LookupError"
    assert attributes["exception.message"] == message
    last_line = str(attributes["exception.stacktrace"]).rstrip().rsplit("\n", 1)[1]
    assert last_line == (f"LookupError: {message}" if message != "LookupError" else "LookupError")
    assert 'raise LookupError(f"no customer' in str(attributes["exception.stacktrace"])
    assert server.status.status_code is StatusCode.ERROR
    if description is not None:
        assert server.status.description == description
    if cap.runtime.settings.exception_messages != "keep":
        _no_canary(cap)


async def test_the_apps_own_record_exception_and_a_failed_client_call(cap: Capture, closed_port: int) -> None:
    app = _app(closed_port)
    assert await _get(app, "/handled") == 200
    assert await _get(app, "/call") == 500
    _no_canary(cap)
    handled = next(s for s in cap.spans if s.kind is SpanKind.SERVER and s.name.endswith("/handled"))
    assert _exception(handled)["exception.message"] == (
        "https://REDACTED:REDACTED@billing.internal/charge?api-key=REDACTED"
    )
    [client] = [s for s in cap.spans if s.kind is SpanKind.CLIENT]
    assert _exception(client)["exception.type"] == "httpx.ConnectError"
    assert client.status.description == "ConnectError: [Errno 111] Connection refused"
    assert (client.attributes or {})["url.full"].endswith("/x?refresh_token=REDACTED&q=1")
