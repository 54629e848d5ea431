"""End-to-end fixtures: the real backend (collector, Jaeger, Prometheus) and one run of the example shop.

The ``stack`` fixture starts the stack once per session (or reuses a running one) and stops it at
the end only when this session started it. ``shop_run`` runs ``examples/shop`` under
``otelperf run`` against the real PostgreSQL and Redis, sends a known set of requests (each with a
W3C ``traceparent`` the test made, so every trace id is known), stops the app with SIGINT so it
flushes, and returns what was sent; the trace and the metric tests both read that one run.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import skip_or_fail

from otelperf.stack import Stack, StackError
from otelperf.stack.components import CORE, find_binary

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JAEGER = "http://127.0.0.1:16686"
PROMETHEUS = "http://127.0.0.1:9090"
OTLP_HTTP = "http://127.0.0.1:4318"
SERVICE = "shop-e2e-run"
SEED_PASSWORD_ITERATIONS = "1000"  # cheap logins: these tests check telemetry, not hashing cost

# Loopback only: an http_proxy in the environment must not see the test's backend queries.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class StackUrls:
    jaeger: str = JAEGER
    prometheus: str = PROMETHEUS
    otlp_http: str = OTLP_HTTP


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUrls]:
    missing = []
    for component in CORE:
        try:
            find_binary(component, os.environ)
        except StackError as exc:
            missing.append(str(exc))
    if missing:
        skip_or_fail("end-to-end tests need the stack binaries:\n" + "\n".join(missing))
    backend = Stack(with_alertmanager=False)
    try:
        result = backend.up(timeout=90)
    except StackError as exc:
        pytest.fail(f"cannot start the otelperf stack for the end-to-end tests:\n{exc}", pytrace=False)
    try:
        yield StackUrls()
    finally:
        if result.started:  # someone else's stack (`otelperf stack up`) stays up
            backend.down()


# --- HTTP helpers for the backends' APIs ------------------------------------------------------------


def get_json(url: str, params: dict[str, str] | None = None, timeout: float = 5.0) -> Any:
    """GET a JSON document; HTTPError (e.g. Jaeger's 404 for an unknown trace) propagates."""
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with _OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read())


def poll(what: str, fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    """Call ``fetch`` until ``done(result)``; fail with the last result after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fetch()
            if done(last):
                return last
        except (OSError, urllib.error.URLError) as exc:  # HTTPError is a URLError
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not there after {timeout:g} s; last answer: {str(last)[:2000]}")
        time.sleep(0.5)


COLLECTOR_METRICS = "http://127.0.0.1:8888/metrics"
JAEGER_METRICS = "http://127.0.0.1:14269/metrics"


def _span_counters(url: str, exporter: str) -> tuple[float, float]:
    """(spans the OTLP receiver accepted, spans ``exporter`` sent) from a collector's own metrics."""
    with _OPENER.open(url, timeout=2) as response:
        text = response.read().decode()
    accepted = sent = 0.0
    for line in text.splitlines():
        if line.startswith("otelcol_receiver_accepted_spans_total{"):
            accepted += float(line.rsplit(" ", 1)[1])
        elif line.startswith("otelcol_exporter_sent_spans_total{") and f'exporter="{exporter}"' in line:
            sent += float(line.rsplit(" ", 1)[1])
    return accepted, sent


def wait_spans_stored(timeout: float = 20.0) -> None:
    """Wait until every span the collector accepted went to Jaeger and Jaeger stored all it got.

    Reading a trace as soon as it shows up could catch it half-written (spans of one trace can
    travel in different batches); after this, what Jaeger answers is all there is.
    """

    def counters() -> tuple[float, float, float, float]:
        return (
            *_span_counters(COLLECTOR_METRICS, "otlp_grpc/jaeger"),
            *_span_counters(JAEGER_METRICS, "jaeger_storage_exporter"),
        )

    poll(
        "collector accepted == sent to Jaeger == stored by Jaeger",
        counters,
        lambda c: c[0] == c[1] == c[2] == c[3],
        timeout,
    )


# --- the example shop under `otelperf run` ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shop_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTEST_", "SHOP_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=OTLP_HTTP,
        OTELPERF_SCHEDULE_DELAY="200ms",
        OTELPERF_METRIC_EXPORT_INTERVAL="1s",
        SHOP_PASSWORD_ITERATIONS=SEED_PASSWORD_ITERATIONS,
        SHOP_SEED_ORDERS="60",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def start_app(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"shop exited early ({proc.returncode}):\n{stop_app(proc)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"shop not ready within {timeout:g} s:\n{stop_app(proc)}")


def stop_app(proc: subprocess.Popen[bytes]) -> str:
    """SIGINT (uvicorn's graceful stop: lifespan shutdown, then otelperf's exit flush); the output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.stdout.read().decode(errors="replace") if proc.stdout else ""


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


@dataclass
class SentRequest:
    tag: str
    method: str
    path: str
    route: str
    trace_id: str
    parent_span_id: str  # the caller's span id in the traceparent we sent
    body: Any = None


@dataclass
class ShopRun:
    """What the test sent to the shop under `otelperf run`, and when."""

    requests: dict[str, SentRequest]
    started: float  # unix seconds, before the app started
    finished: float  # unix seconds, after it stopped
    database: str
    cache_prefix: str
    customer_orders: int  # orders of the customer the N+1 list was asked for
    order_ids: list[int] = field(default_factory=list)
    output: str = ""

    def sent_to(self, route: str) -> int:
        return sum(1 for r in self.requests.values() if r.route == route)


@pytest.fixture(scope="session")
def shop_database(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database for the session's shop runs: (its name, its URL); dropped after."""
    name = f"shop_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def shop_run(stack: StackUrls, shop_database: tuple[str, str], redis_url: str) -> ShopRun:
    from examples.shop.db import SEED_PASSWORD

    database, db_url = shop_database
    port = free_port()
    prefix = f"e2e-{uuid.uuid4().hex[:8]}:"  # a fresh price key: the first lookup must miss
    env = shop_env(
        DATABASE_URL=db_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        REDIS_URL=redis_url,
        SHOP_CACHE_PREFIX=prefix,
        SHOP_INVENTORY_URL=f"http://127.0.0.1:{port}/internal/stock/{{product_id}}",
    )
    cmd = [
        str(BIN / "otelperf"),
        "run",
        "--service-name",
        SERVICE,
        "--service-version",
        "1.2.3",
        "--environment",
        "e2e",
        "--",
        str(BIN / "python"),
        "-m",
        "uvicorn",
        "examples.shop.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    started = time.time()
    proc = start_app(cmd, env)
    requests: dict[str, SentRequest] = {}
    try:
        wait_ready(port, proc)
        with psycopg.connect(db_url) as conn:  # the app seeded it; pick data straight from the source
            row = conn.execute(
                "SELECT customer_id, count(*) FROM orders GROUP BY customer_id HAVING count(*) >= 2 "
                "ORDER BY count(*) DESC, customer_id LIMIT 1"
            ).fetchone()
            order_ids = [
                r[0] for r in conn.execute("SELECT id FROM orders WHERE id > 30 ORDER BY id LIMIT 2")
            ]
        assert row is not None and len(order_ids) == 2, "the shop's seed has no orders"
        customer_id, customer_orders = int(row[0]), int(row[1])
        plan: list[tuple[str, str, str, str, dict[str, Any]]] = [
            ("list", "GET", "/orders", "/orders", {"params": {"customer_id": customer_id}}),
            ("order-1", "GET", f"/orders/{order_ids[0]}", "/orders/{order_id}", {}),
            ("order-2", "GET", f"/orders/{order_ids[1]}", "/orders/{order_id}", {}),
            ("price-miss", "GET", "/products/7/price", "/products/{product_id}/price", {}),
            ("price-hit", "GET", "/products/7/price", "/products/{product_id}/price", {}),
            ("inventory", "GET", "/inventory/4", "/inventory/{product_id}", {}),
            (
                "login",
                "POST",
                "/login",
                "/login",
                {"json": {"username": "alice", "password": SEED_PASSWORD}},
            ),
        ]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for tag, method, path, route, kwargs in plan:
                trace_id, parent_id, response = traced_request(client, method, path, **kwargs)
                requests[tag] = SentRequest(tag, method, path, route, trace_id, parent_id, response.json())
    finally:
        output = stop_app(proc)
    assert proc.returncode == 0, f"shop exited with {proc.returncode}:\n{output}"
    assert "Traceback" not in output, output
    assert requests["price-miss"].body["cached"] is False and requests["price-hit"].body["cached"] is True
    return ShopRun(
        requests=requests,
        started=started,
        finished=time.time(),
        database=database,
        cache_prefix=prefix,
        customer_orders=min(customer_orders, 20),  # the endpoint's default limit
        order_ids=order_ids,
        output=output,
    )


# --- Jaeger's OTLP JSON --------------------------------------------------------------------------


@dataclass(frozen=True)
class JSpan:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str  # "" for none
    name: str
    kind: int  # OTLP enum: 2 SERVER, 3 CLIENT
    attributes: dict[str, Any]
    resource: dict[str, Any]


def hex_id(value: str, size: int) -> str:
    """OTLP JSON ids: Jaeger's api_v3 writes hex; protobuf's canonical JSON would be base64."""
    if not value:
        return ""
    if len(value) == size * 2 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    import base64

    return base64.b64decode(value).hex()


def any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # proto3 JSON writes int64 as a string
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    return value


def attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: any_value(a.get("value", {})) for a in items or []}


def spans_of(document: dict[str, Any]) -> list[JSpan]:
    out = []
    for resource_spans in document.get("result", {}).get("resourceSpans", []):
        resource = attributes(resource_spans.get("resource", {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                out.append(
                    JSpan(
                        trace_id=hex_id(span["traceId"], 16),
                        span_id=hex_id(span["spanId"], 8),
                        parent_span_id=hex_id(span.get("parentSpanId", ""), 8),
                        name=span["name"],
                        kind=int(span.get("kind", 0)),
                        attributes=attributes(span.get("attributes")),
                        resource=resource,
                    )
                )
    return out


def jaeger_trace(trace_id: str, timeout: float = 20.0, min_spans: int = 1) -> list[JSpan]:
    """The trace's spans from /api/v3/traces/<id>, once at least ``min_spans`` are there."""
    document = poll(
        f"trace {trace_id} in Jaeger",
        lambda: get_json(f"{JAEGER}/api/v3/traces/{trace_id}"),
        lambda doc: len(spans_of(doc)) >= min_spans,
        timeout,
    )
    return spans_of(document)


def rfc3339(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def jaeger_search(service: str, start: float, end: float) -> list[JSpan]:
    """Every span of every trace of ``service`` started in [start, end] (Jaeger api_v3 FindTraces)."""
    try:
        document = get_json(
            f"{JAEGER}/api/v3/traces",
            {
                "query.service_name": service,
                "query.start_time_min": rfc3339(start - 1),
                "query.start_time_max": rfc3339(end + 1),
                "query.num_traces": "1000",
            },
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # "No traces found"
            return []
        raise
    return spans_of(document)
