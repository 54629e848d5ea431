"""The pure logic of the Redis instrumentation: operation names, sanitized text, cache results."""

from __future__ import annotations

import pytest
import redis

from otelperf.instrumentation import _redis_commands
from otelperf.instrumentation._redis_commands import cache_result, server_attributes
from otelperf.instrumentation.redis import operation_name, pipeline_query_text, query_text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("GET", "user:1"), "GET ?"),
        ((b"SET", b"k", b"v"), "SET ? ?"),
        (("get", "k"), "GET ?"),
        (("PING",), "PING"),
        (("JSON.GET", "doc", "$"), "JSON.GET ? ?"),
        (("CLIENT SETNAME", "worker-1"), "CLIENT SETNAME ?"),  # how redis-py sends subcommands
        (("CONFIG", "GET", "maxmemory"), "CONFIG GET ?"),  # the same, called by hand
        (("OBJECT", "ENCODING", "alice"), "OBJECT ENCODING ?"),
        (("GET alice@example.com",), "GET ?"),  # redis-py sends the words as arguments
        (("SET alice secret", "EX", 60), "SET ? ? ? ?"),
        (("no such", "x"), "NO ? ?"),
        (("bad!cmd", "x"), "_OTHER ?"),
    ],
)
def test_query_text_keeps_the_command_and_drops_every_argument(
    args: tuple[object, ...], expected: str
) -> None:
    assert query_text(args) == expected


def test_operation_name_is_the_command_only() -> None:
    assert operation_name(("hgetall", "secret-key")) == "HGETALL"
    assert operation_name(("SCRIPT LOAD", "return 1")) == "SCRIPT LOAD"
    assert operation_name(()) == "_OTHER"


def test_operation_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_redis_commands, "_operations", set())
    monkeypatch.setattr(_redis_commands, "_parsed", {})
    monkeypatch.setattr(_redis_commands, "_MAX_OPERATIONS", 2)

    assert [operation_name((f"CMD{i}",)) for i in range(4)] == ["CMD0", "CMD1", "_OTHER", "_OTHER"]
    assert operation_name(("CMD0", "x")) == "CMD0"  # known names stay


def test_pipeline_text_is_one_line_per_command_and_bounded() -> None:
    stack = [(("GET", "a"), {}), (("SET", "a", "1"), {})]
    assert pipeline_query_text(stack) == "GET ?\nSET ? ?"

    long = [(("INCR", f"k{i}"), {}) for i in range(150)]
    lines = pipeline_query_text(long).split("\n")
    assert lines[:2] == ["INCR ?", "INCR ?"]
    assert len(lines) == 101 and lines[-1] == "... 50 more"


@pytest.mark.parametrize(
    ("operation", "result", "expected"),
    [
        ("GET", b"v", (1, 0)),
        ("GET", None, (0, 1)),
        ("GETDEL", b"", (1, 0)),  # an empty string is a cached value, not a miss
        ("JSON.GET", None, (0, 1)),
        ("MGET", [b"1", None, b"2"], (2, 1)),
        ("HMGET", [None, None], (0, 2)),
        ("SET", True, None),
        ("MGET", None, None),
    ],
)
def test_cache_result(operation: str, result: object, expected: tuple[int, int] | None) -> None:
    assert cache_result(operation, result) == expected


def test_server_attributes_of_tcp_and_unix_socket_clients() -> None:
    tcp = redis.Redis(host="cache.internal", port=6390, db=2)
    unix = redis.Redis(unix_socket_path="/run/redis.sock", db=0)
    assert server_attributes(tcp) == {
        "db.namespace": "2",
        "server.address": "cache.internal",
        "server.port": 6390,
    }
    assert server_attributes(unix) == {"db.namespace": "0", "server.address": "/run/redis.sock"}


def test_redis_is_patched_when_the_app_imports_it_not_at_init() -> None:
    """An app that never uses Redis does not pay for importing redis-py; one that imports it after
    init gets its commands traced all the same (run in a fresh interpreter: import state)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        from otelperf.testing import capture, stop_capture
        cap = capture()
        assert "redis.client" not in sys.modules, "imported at init"
        import redis
        from redis.asyncio.client import Redis as AsyncRedis
        client = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.05)
        try:
            client.get("k")
        except redis.exceptions.ConnectionError:
            pass
        assert type(redis.client.Redis.__dict__["execute_command"]).__name__ == "FunctionWrapper"
        assert type(AsyncRedis.__dict__["execute_command"]).__name__ == "FunctionWrapper"
        cap.flush()
        assert [s.name for s in cap.spans] == ["GET"], [s.name for s in cap.spans]
        stop_capture(cap)
        assert type(redis.client.Redis.__dict__["execute_command"]).__name__ == "function"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
