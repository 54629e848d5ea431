"""The example shop as the end-to-end tests run it: a process under ``otelperf run`` (or plain
uvicorn, for code mode) on a free loopback port, against a PostgreSQL database of its own.

``start_shop`` returns once ``/healthz`` answers; ``ShopProcess.stop()`` (also on leaving a
``with`` block) sends SIGINT, uvicorn's graceful stop, so the lifespan shutdown and otelperf's exit
flush run, waits a bounded time, then SIGKILLs, and keeps the process' output for the test's
assertions. A shop that fails to come up is stopped before the test fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psycopg
import pytest
from tests.e2e._backend import OTLP_HTTP

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SEED_PASSWORD_ITERATIONS = "1000"  # cheap logins: these tests check telemetry, not hashing cost
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_otelperf(*args: str, timeout: float = 90, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The real ``otelperf`` CLI of this venv, as a user runs it; never raises on a non-zero exit."""
    return subprocess.run(
        [str(BIN / "otelperf"), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@contextmanager
def fresh_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL database named ``<prefix>_<random>``; yields its URL, drops it after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def shop_env(
    *,
    postgres_url: str | None = None,
    redis_url: str | None = None,
    cache_prefix: str | None = None,
    inventory_port: int | None = None,
    **extra: str,
) -> dict[str, str]:
    """The shop's environment: this process' minus OTEL*/PYTEST_*/SHOP_*, fast exports, a small seed.

    ``postgres_url`` (``postgresql://``) is given to the shop with the asyncpg driver;
    ``inventory_port`` is the port of the shop process that serves ``/internal/stock/{id}``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTEST_", "SHOP_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=OTLP_HTTP,
        OTELPERF_SCHEDULE_DELAY="200ms",
        OTELPERF_METRIC_EXPORT_INTERVAL="1s",
        SHOP_PASSWORD_ITERATIONS=SEED_PASSWORD_ITERATIONS,
        SHOP_SEED_ORDERS="60",
        PYTHONPATH=os.pathsep.join((str(ROOT), str(ROOT / "src"))),
    )
    if postgres_url is not None:
        env["DATABASE_URL"] = postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    if cache_prefix is not None:
        env["SHOP_CACHE_PREFIX"] = cache_prefix
    if inventory_port is not None:
        env["SHOP_INVENTORY_URL"] = f"http://127.0.0.1:{inventory_port}/internal/stock/{{product_id}}"
    env.update(extra)
    return env


@dataclass
class ShopProcess:
    """One running shop; ``stop()`` is idempotent and returns (and keeps) the process' output."""

    proc: subprocess.Popen[bytes]
    port: int
    output: str = ""
    _stopped: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stop(self) -> str:
        """SIGINT (uvicorn's graceful stop: lifespan shutdown, then otelperf's exit flush); the output."""
        if self._stopped:
            return self.output
        self._stopped = True
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.output = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
        return self.output

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"shop exited early ({self.proc.returncode}):\n{self.stop()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"shop not ready within {timeout:g} s:\n{self.stop()}")

    def __enter__(self) -> ShopProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_shop(
    *,
    service: str | None,
    env: Mapping[str, str],
    port: int | None = None,
    run_options: Sequence[str] = (),
    ready_timeout: float = 40.0,
) -> ShopProcess:
    """Start ``examples.shop.app:app`` under ``otelperf run --service-name <service> <run_options>``
    (``service=None``: plain uvicorn, the app instruments itself) and wait for ``/healthz``.

    Example::

        with start_shop(service="shop-e2e", env=shop_env(postgres_url=url)) as shop:
            httpx.get(f"{shop.url}/orders")
        assert shop.returncode == 0, shop.output
    """
    port = free_port() if port is None else port
    uvicorn = [str(BIN / "python"), "-m", "uvicorn", "examples.shop.app:app"]
    uvicorn += ["--host", "127.0.0.1", "--port", str(port)]
    if service is not None:
        uvicorn = [str(BIN / "otelperf"), "run", "--service-name", service, *run_options, "--", *uvicorn]
    proc = subprocess.Popen(
        uvicorn,
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    shop = ShopProcess(proc, port)
    try:
        shop.wait_ready(ready_timeout)
    except BaseException:
        shop.stop()
        raise
    return shop


# --- requests with a trace id the test chose ---------------------------------------------------------


@dataclass
class SentRequest:
    tag: str
    method: str
    path: str
    route: str
    trace_id: str
    parent_span_id: str  # the caller's span id in the traceparent we sent
    body: Any = None


def traced_request(
    client: httpx.Client, method: str, path: str, **kwargs: Any
) -> tuple[str, str, httpx.Response]:
    """One request with its own sampled W3C traceparent; returns (trace id, parent span id, response)."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    response = client.request(
        method, path, headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}, timeout=10.0, **kwargs
    )
    assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
    return trace_id, parent_id, response


def send_traced(client: httpx.Client, tag: str, path: str, params: Mapping[str, Any]) -> SentRequest:
    """``GET path`` with its own trace id, recorded with the route left as the path."""
    trace_id, parent_id, response = traced_request(client, "GET", path, params=params)
    return SentRequest(tag, "GET", path, path, trace_id, parent_id, response.json())
