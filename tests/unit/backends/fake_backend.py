"""A loopback HTTP server that answers like a backend: canned (status, body) per path, and a log
of what was asked (path and query parameters)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "recorded"

# (status, body): a str body is sent as is, anything else as JSON.
Answer = tuple[int, Any]


def recorded(name: str) -> Any:
    """A backend's answer recorded from the local stack (tests/unit/backends/recorded/)."""
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


@dataclass
class FakeBackend:
    url: str
    answers: Mapping[str, Answer | Callable[[dict[str, str]], Answer]]
    asked: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def fake_backend(answers: Mapping[str, Answer | Callable[[dict[str, str]], Answer]]) -> Iterator[FakeBackend]:
    """Serve ``answers`` (path -> answer, or path -> f(params) -> answer); other paths: 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            params = dict(urllib.parse.parse_qsl(parts.query))
            backend.asked.append((parts.path, params))
            answer = backend.answers.get(parts.path, (404, "404 page not found\n"))
            status, body = answer(params) if callable(answer) else answer
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    backend = FakeBackend(f"http://127.0.0.1:{server.server_address[1]}", answers)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield backend
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was just free)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
