"""The secrets canary scenario, shared by tests/integration/test_secrets_canary.py (exporting to an
in-process OTLP sink) and tests/e2e/test_e2e_secrets.py (exporting through the real collector).

One unique canary per way a user's secret reached the exported telemetry (issue 12): the
parameters and DETAIL line of an IntegrityError on the real PostgreSQL and on SQLite, the
arguments a Redis error echoes, the userinfo and credential query parameters of URLs in httpx and
requests errors (one canary per parameter name), the incoming query string, the SQL sanitizer's
former gaps (nested comments, SQLite double-quoted values, SET values), and statements that
become slow-query and N+1 findings.

    c = canaries()
    with upstream_server() as upstream:
        otelperf.init(...)  # slow_query_ms=0, n_plus_one_min_ms=0: see INIT_OPTIONS
        statuses = run_requests(c, postgres_url, redis_url, upstream, table)
    assert statuses == EXPECTED_STATUSES
    check_present(spans, upstream, table)  # spans: span_record() dicts, however they were read back
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import requests

__all__ = [
    "CASES",
    "EXPECTED_STATUSES",
    "INIT_OPTIONS",
    "PARAM_NAMES",
    "canaries",
    "check_present",
    "closed_port",
    "run_requests",
    "upstream_server",
]

# Query parameter names issue 12 found passing through; each gets its own canary.
PARAM_NAMES = (
    "token", "api-key", "x-api-key", "refresh_token", "id_token", "jwt", "session", "sessionid",
    "auth_token", "passwd", "private_token", "client_secret", "access-token", "X-Amz-Signature",
)  # fmt: skip
CASES = (
    "pg_param", "pg_detail", "pg_literal", "sqlite_param", "sqlite_literal", "redis_command",
    "redis_arg", "httpx_userinfo", "requests_userinfo", "nested_comment", "sqlite_dq_value",
    "set_value", "slow_literal", "n_plus_one_literal", "incoming_api_key", "incoming_refresh",
    "app_password",
)  # fmt: skip

# otelperf.init() options the scenario needs besides the endpoint and the service name.
INIT_OPTIONS: dict[str, Any] = {
    # Every statement is a slow-query finding, so its text reaches events and labels: 1 µs, since
    # the settings refuse 0 ("more than 0"; a 0 fell back to the 100 ms default and the
    # pg_sleep(0.01) statement was no finding at all).
    "slow_query_ms": 0.001,
    "n_plus_one_min_ms": 0,  # six fast repeats are an N+1 however quick the database is
}

EXPECTED_STATUSES = {
    "/pg-integrity": 500, "/sqlite-integrity": 500, "/redis-error": 500, "/httpx-status": 500,
    "/requests-connection": 500, "/ok-calls": 200, "/app-error": 500, "/gaps": 200,
}  # fmt: skip


def canaries() -> dict[str, str]:
    """Case name -> a unique canary (letters and digits only: found as is in any JSON or text)."""
    names = list(CASES) + [f"param:{name}" for name in PARAM_NAMES]
    return {name: f"cnry{uuid.uuid4().hex[:14]}" for name in names}


@contextlib.contextmanager
def upstream_server() -> Iterator[str]:
    """A loopback HTTP server (its ``host:port``): 404 under /missing, 200 elsewhere."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404 if self.path.startswith("/missing") else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_requests(
    c: dict[str, str], postgres_url: str, redis_url: str, upstream: str, table: str
) -> dict[str, int]:
    """Plant every canary through a FastAPI app (SQLAlchemy with psycopg, SQLite, redis-py, httpx,
    requests) under otelperf, which the caller has initialised; the status of each request."""
    import redis
    from fastapi import FastAPI
    from sqlalchemy import create_engine, text
    from starlette.testclient import TestClient

    pg = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    lite = create_engine("sqlite://")
    r = redis.Redis.from_url(redis_url)
    app = FastAPI()

    @app.get("/pg-integrity")
    def pg_integrity() -> None:
        with pg.begin() as conn:
            conn.execute(text(f"CREATE TEMP TABLE {table} (email TEXT UNIQUE, pw TEXT, note TEXT)"))
            insert = text(f"INSERT INTO {table} (email, pw, note) VALUES (:email, :pw, '{c['pg_literal']}')")
            conn.execute(insert, {"email": c["pg_detail"], "pw": c["pg_param"]})
            conn.execute(insert, {"email": c["pg_detail"], "pw": c["pg_param"]})

    @app.get("/sqlite-integrity")
    def sqlite_integrity() -> None:
        with lite.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS u (email TEXT UNIQUE, pw TEXT)"))
            conn.execute(text("DELETE FROM u"))
            insert = text(f"INSERT INTO u (email, pw) VALUES ('{c['sqlite_literal']}', :pw)")
            conn.execute(insert, {"pw": c["sqlite_param"]})
            conn.execute(insert, {"pw": c["sqlite_param"]})

    @app.get("/redis-error")
    def redis_error() -> None:
        r.execute_command(f"NOSUCH{c['redis_command']}", c["redis_arg"])

    @app.get("/httpx-status")
    def httpx_status() -> None:
        params = "&".join(f"{name}={c['param:' + name]}" for name in PARAM_NAMES[:7])
        url = f"http://user:{c['httpx_userinfo']}@{upstream}/missing?{params}&page=2"
        httpx.get(url).raise_for_status()

    @app.get("/requests-connection")
    def requests_connection() -> None:
        params = "&".join(f"{name}={c['param:' + name]}" for name in PARAM_NAMES[7:])
        url = f"http://user:{c['requests_userinfo']}@127.0.0.1:{closed_port()}/x?{params}&page=2"
        requests.get(url, timeout=5)

    @app.get("/ok-calls")
    def ok_calls() -> dict[str, bool]:
        params = "&".join(f"{name}={c['param:' + name]}" for name in PARAM_NAMES)
        httpx.get(f"http://{upstream}/fine?{params}")
        requests.get(f"http://{upstream}/fine?{params}", timeout=5)
        return {"ok": True}

    @app.get("/gaps")
    def gaps(api_key: str = "") -> dict[str, bool]:
        with pg.connect() as conn:
            conn.execute(text(f"SELECT 1 /* a /* b */ {c['nested_comment']} */"))
            conn.execute(text(f"SET application_name TO {c['set_value']}"))
            conn.execute(text("RESET application_name"))
            conn.execute(text(f"SELECT pg_sleep(0.01), '{c['slow_literal']}'"))
            for i in range(6):
                conn.execute(text(f"SELECT '{c['n_plus_one_literal']}', {i}"))
        with lite.connect() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS v (name TEXT)"))
            conn.execute(text(f'SELECT * FROM v WHERE name = "{c["sqlite_dq_value"]}"'))
        return {"ok": True}

    @app.get("/app-error")
    def app_error() -> None:
        raise RuntimeError(f"login to https://svc.internal/ failed: password={c['app_password']}")

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            statuses = {
                path: client.get(path).status_code
                for path in (
                    "/pg-integrity",
                    "/sqlite-integrity",
                    "/redis-error",
                    "/httpx-status",
                    "/requests-connection",
                    "/ok-calls",
                    "/app-error",
                )
            }
            incoming = f"/gaps?api-key={c['incoming_api_key']}&refresh_token={c['incoming_refresh']}&page=1"
            statuses["/gaps"] = client.get(incoming).status_code
    finally:
        pg.dispose()  # not SQLite's: its connections belong to the threads that made them
        r.close()
    return statuses


def span_record(
    name: str, *, kind: int, status: int, description: str, attributes: dict[str, Any], events: list[Any]
) -> dict[str, Any]:
    """One exported span as check_present() reads it; ``events``: (name, attributes) pairs."""
    return {
        "name": name,
        "kind": kind,
        "status": status,
        "description": description,
        "attributes": attributes,
        "events": events,
    }


def _same(text: str) -> str:
    return text


def check_present(
    spans: list[dict[str, Any]], upstream: str, table: str, *, seen_as: Callable[[str], str] = _same
) -> None:
    """The non-secret parts are all there (error classes, sanitized statements, redacted URLs'
    hosts, findings), so a leak check on the same telemetry cannot pass by exporting nothing.

    ``seen_as``: what a backend makes of a text otelperf exported (the collector's redaction
    processor masks secret-looking substrings, even otelperf's ``REDACTED`` placeholders).
    """
    x = seen_as
    servers = {s["attributes"].get("http.route"): s for s in spans if s["kind"] == 2}  # SERVER

    def exception(route: str) -> dict[str, Any]:
        span = servers[route]
        assert span["status"] == 2, route  # ERROR
        [attributes] = [a for name, a in span["events"] if name == "exception"]
        return dict(attributes)

    pg_error = exception("/pg-integrity")
    assert pg_error["exception.type"] == "sqlalchemy.exc.IntegrityError"
    assert pg_error["exception.message"].startswith(
        '(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint "'
    )
    assert (
        f"[SQL: INSERT INTO {table} (email, pw, note) VALUES (%(email)s, %(pw)s, ?)]"
        in pg_error["exception.message"]
    )
    assert "psycopg.errors.UniqueViolation: duplicate key value" in pg_error["exception.stacktrace"]
    description = servers["/pg-integrity"]["description"]
    assert description.startswith("IntegrityError: (psycopg.errors.UniqueViolation)")

    lite_error = exception("/sqlite-integrity")
    assert lite_error["exception.message"] == (
        "(sqlite3.IntegrityError) UNIQUE constraint failed: u.email\n"
        "[SQL: INSERT INTO u (email, pw) VALUES (?, ?)]"
    )
    assert exception("/redis-error")["exception.type"] == "redis.exceptions.ResponseError"
    assert exception("/redis-error")["exception.message"].startswith("unknown command '?'")

    status_error = exception("/httpx-status")
    assert status_error["exception.type"] == "httpx.HTTPStatusError"
    redacted_url = x(f"'http://REDACTED:REDACTED@{upstream}/missing?token=REDACTED&")
    assert redacted_url in status_error["exception.message"]
    assert x("&page=2'") in status_error["exception.message"]
    connection_error = exception("/requests-connection")
    assert connection_error["exception.type"] == "requests.exceptions.ConnectionError"
    assert x("Max retries exceeded with url: /x?sessionid=REDACTED&") in connection_error["exception.message"]
    app_error = exception("/app-error")
    assert app_error["exception.message"] == x("login to https://svc.internal/ failed: password=REDACTED")

    gaps = servers["/gaps"]
    assert gaps["attributes"]["url.query"] == x("api-key=REDACTED&refresh_token=REDACTED&page=1")
    urls = [s["attributes"]["url.full"] for s in spans if "url.full" in s["attributes"]]
    fine = x(f"http://{upstream}/fine?token=REDACTED&api-key=REDACTED&")
    assert any(u.startswith(fine) for u in urls), urls
    statements = {s["attributes"].get("db.query.text") for s in spans}
    assert "SELECT ? " in statements or "SELECT ?" in statements  # the nested comment, gone
    assert "SET application_name TO ?" in statements
    assert "SELECT * FROM v WHERE name = ?" in statements
    findings = [a for s in spans for name, a in s["events"] if name == "otelperf.finding"]
    finding_statements = {(f["otelperf.finding.detector"], f["otelperf.finding.statement"]) for f in findings}
    assert ("n_plus_one", "SELECT ?, ?") in finding_statements, finding_statements
    assert ("slow_query", "SELECT pg_sleep(?), ?") in finding_statements, finding_statements
