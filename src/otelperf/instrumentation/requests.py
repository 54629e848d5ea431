"""CLIENT spans for requests: ``requests.Session.send`` (which ``requests.get`` & co. go through).

One span per call, named by the method (``"GET"``), with the W3C ``traceparent`` of that span
injected into the outgoing request, and one ``http.client.request.duration`` measurement.
requests follows redirects by calling ``send`` again from inside ``send``; those inner calls are
not traced separately (HTTP instrumentation is suppressed during the outer call), so one call
is one span, as with httpx.

Streaming responses (``stream=True``): the span ends when ``send`` returns, that is when the
response headers have arrived; reading the body is not part of it.

The span itself is made in :mod:`otelperf.instrumentation._http_client` (shared with httpx).
Under a sampled parent it is a leaf span: span processors get its ``on_end`` without an
``on_start``.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit

import wrapt
from opentelemetry import context as otel_context

from otelperf._sdk.suppression import SUPPRESS_HTTP_KEY
from otelperf.instrumentation._base import InstrumentContext, Instrumentor
from otelperf.instrumentation._http_client import ClientState, RequestParts, begin, end
from otelperf.redaction.url import redact_url

__all__ = ["INSTRUMENTOR"]

_SUPPRESS_HTTP = SUPPRESS_HTTP_KEY
_DEFAULT_PORTS = {"http": 80, "https": 443}

_state: ClientState | None = None


def _describe(request: Any) -> RequestParts:
    url = str(request.url)
    parts = urlsplit(url)
    scheme = parts.scheme
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a malformed port: requests itself will refuse the URL
        port = None
    return str(request.method or "GET").upper(), url, scheme, parts.hostname or "", port


def _redact(url: str) -> str:
    return redact_url(url)  # the module's name, looked up per call


def _send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call = begin(_state, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    # Redirect hops re-enter send(); they belong to this call's span.
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_HTTP, True))
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        otel_context.detach(token)
        end(call, None, exc)
        raise
    otel_context.detach(token)
    end(call, response, None)
    return response


class RequestsInstrumentor(Instrumentor):
    """Instruments ``requests.Session.send``."""

    name = "requests"

    def instrument(self, ctx: InstrumentContext) -> None:
        global _state
        import requests

        _state = ClientState(ctx, "requests", _describe, _redact)
        if not isinstance(vars(requests.Session)["send"], wrapt.FunctionWrapper):
            wrapt.wrap_function_wrapper(requests.Session, "send", _send)

    def uninstrument(self) -> None:
        global _state
        _state = None
        requests = sys.modules.get("requests")
        if requests is None:
            return
        current = vars(requests.Session).get("send")
        if isinstance(current, wrapt.FunctionWrapper):
            requests.Session.send = current.__wrapped__


INSTRUMENTOR = RequestsInstrumentor()
