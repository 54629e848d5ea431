"""CLIENT spans for httpx: ``httpx.Client.send`` and ``httpx.AsyncClient.send``.

One span per ``send`` call, named by the method (``"GET"``), with the W3C ``traceparent`` of
that span injected into the outgoing request, and one ``http.client.request.duration``
measurement. Redirects followed by httpx happen inside that one call, so they share its span.

Streaming responses (``client.stream(...)``, ``send(..., stream=True)``): the span ends when
``send`` returns, that is when the response headers have arrived; reading the body is not part
of it.

The span itself is made in :mod:`otelperf.instrumentation._http_client` (shared with requests).
Under a sampled parent it is a leaf span: span processors get its ``on_end`` without an
``on_start``.
"""

from __future__ import annotations

import sys
from typing import Any

import wrapt

from otelperf.instrumentation._base import InstrumentContext, Instrumentor
from otelperf.instrumentation._http_client import ClientState, RequestParts, begin, end
from otelperf.redaction.url import redact_url

__all__ = ["INSTRUMENTOR"]

_DEFAULT_PORTS = {"http": 80, "https": 443}

_state: ClientState | None = None


def _describe(request: Any) -> RequestParts:
    url = request.url
    scheme = url.scheme
    return str(request.method), str(url), scheme, url.host, url.port or _DEFAULT_PORTS.get(scheme)


def _redact(url: str) -> str:
    return redact_url(url)  # the module's name, looked up per call


def _send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call = begin(_state, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        end(call, None, exc)
        raise
    end(call, response, None)
    return response


async def _send_async(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call = begin(_state, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        end(call, None, exc)
        raise
    end(call, response, None)
    return response


class HttpxInstrumentor(Instrumentor):
    """Instruments ``httpx.Client.send`` and ``httpx.AsyncClient.send``."""

    name = "httpx"

    def instrument(self, ctx: InstrumentContext) -> None:
        global _state
        import httpx

        _state = ClientState(ctx, "httpx", _describe, _redact)
        for cls, wrapper in ((httpx.Client, _send), (httpx.AsyncClient, _send_async)):
            if not isinstance(vars(cls)["send"], wrapt.FunctionWrapper):
                wrapt.wrap_function_wrapper(cls, "send", wrapper)

    def uninstrument(self) -> None:
        global _state
        _state = None
        httpx = sys.modules.get("httpx")
        if httpx is None:
            return
        for cls in (httpx.Client, httpx.AsyncClient):
            current = vars(cls).get("send")
            if isinstance(current, wrapt.FunctionWrapper):
                cls.send = current.__wrapped__


INSTRUMENTOR = HttpxInstrumentor()
