"""Redis instrumentation against a real Redis (OTELPERF_TEST_REDIS_URL, fixture `redis_url` in conftest)."""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.client
import redis.client
import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from otelperf.instrumentation.redis import INSTRUMENTOR
from otelperf.testing import Capture, capture, stop_capture

pytestmark = pytest.mark.redis

PATCHED = [
    (redis.client.Redis, "execute_command"),
    (redis.client.Pipeline, "immediate_execute_command"),
    (redis.client.Pipeline, "execute"),
    (redis.asyncio.client.Redis, "execute_command"),
    (redis.asyncio.client.Pipeline, "immediate_execute_command"),
    (redis.asyncio.client.Pipeline, "execute"),
]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def only(cap: Capture, name: str) -> ReadableSpan:
    spans = cap.spans_named(name)
    assert len(spans) == 1, [s.name for s in cap.spans]
    return spans[0]


def test_command_span_has_sanitized_query_and_server(
    otelperf_capture: Capture, client: redis.Redis, redis_url: str, prefix: str
) -> None:
    line = sys._getframe().f_lineno + 1
    client.set(prefix + "k", "v", ex=60)

    span = only(otelperf_capture, "SET")
    pool_kwargs = client.connection_pool.connection_kwargs
    assert span.kind is SpanKind.CLIENT
    assert attrs(span) == {
        "db.system.name": "redis",
        "db.operation.name": "SET",
        "db.query.text": "SET ? ? ? ?",
        "db.namespace": str(pool_kwargs.get("db", 0)),
        "server.address": pool_kwargs["host"],
        "server.port": pool_kwargs["port"],
        "otelperf.component": "cache",
        "code.file.path": __file__,
        "code.function.name": "test_command_span_has_sanitized_query_and_server",
        "code.line.number": line,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_get_hit_and_miss(otelperf_capture: Capture, client: redis.Redis, prefix: str) -> None:
    client.set(prefix + "present", "1")
    otelperf_capture.clear()

    assert client.get(prefix + "present") == b"1"
    assert client.get(prefix + "absent") is None

    hit, miss = otelperf_capture.spans_named("GET")
    assert attrs(hit)["otelperf.cache.hit"] is True
    assert attrs(miss)["otelperf.cache.hit"] is False
    assert attrs(hit)["otelperf.cache.name"] == "redis"
    assert "otelperf.cache.hits" not in attrs(hit)
    points = {
        p.attributes["otelperf.cache.result"]: p.value
        for p in otelperf_capture.metric_points("otelperf.cache.requests")
        if p.attributes["otelperf.cache.name"] == "redis"
    }
    assert points == {"hit": 1, "miss": 1}
    (ratio,) = [
        p
        for p in otelperf_capture.metric_points("otelperf.cache.hit_ratio")
        if p.attributes["otelperf.cache.name"] == "redis"
    ]
    assert ratio.value == pytest.approx(0.5)


def test_non_read_commands_have_no_cache_attributes(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    client.incr(prefix + "n")
    assert not {"otelperf.cache.hit", "otelperf.cache.name"} & attrs(only(otelperf_capture, "INCRBY")).keys()
    assert otelperf_capture.metric_points("otelperf.cache.requests") == []


def test_mget_partial_hit_counts_every_key(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    client.mset({prefix + "a": "1", prefix + "b": "2"})
    otelperf_capture.clear()

    assert client.mget(prefix + "a", prefix + "missing", prefix + "b") == [b"1", None, b"2"]

    span = attrs(only(otelperf_capture, "MGET"))
    assert span["db.query.text"] == "MGET ? ? ?"
    assert span["otelperf.cache.hit"] is False  # hit means every key was found
    assert (span["otelperf.cache.hits"], span["otelperf.cache.misses"]) == (2, 1)
    points = {
        p.attributes["otelperf.cache.result"]: p.value
        for p in otelperf_capture.metric_points("otelperf.cache.requests")
    }
    assert points == {"hit": 2, "miss": 1}


def test_hmget_all_found_is_a_hit(otelperf_capture: Capture, client: redis.Redis, prefix: str) -> None:
    client.hset(prefix + "h", mapping={"f1": "1", "f2": "2"})
    assert client.hmget(prefix + "h", ["f1", "f2"]) == [b"1", b"2"]
    assert client.hget(prefix + "h", "nope") is None

    hmget = attrs(only(otelperf_capture, "HMGET"))
    assert (hmget["otelperf.cache.hit"], hmget["otelperf.cache.hits"], hmget["otelperf.cache.misses"]) == (
        True,
        2,
        0,
    )
    assert attrs(only(otelperf_capture, "HGET"))["otelperf.cache.hit"] is False


def test_redis_span_is_child_of_the_current_span(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("handler"):
        client.get(prefix + "x")
        client.set(prefix + "x", "1")

    parent = only(otelperf_capture, "handler")
    assert sorted(s.name for s in otelperf_capture.children_of(parent)) == ["GET", "SET"]
    assert all(s.context.trace_id == parent.context.trace_id for s in otelperf_capture.spans)


def test_sync_blocking_command_span_covers_the_wait(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    started = time.perf_counter()
    assert client.blpop([prefix + "empty"], timeout=0.1) is None
    elapsed = time.perf_counter() - started

    span = only(otelperf_capture, "BLPOP")
    duration = (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    assert 0.1 <= duration <= elapsed


def test_wrong_type_error_marks_the_span_and_propagates(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    client.set(prefix + "str", "v")
    otelperf_capture.clear()

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.lpush(prefix + "str", "x")

    span = only(otelperf_capture, "LPUSH")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "ResponseError"
    errors = [
        p
        for p in otelperf_capture.metric_points("db.client.operation.duration")
        if p.attributes.get("error.type") == "ResponseError"
    ]
    assert [(p.attributes["db.operation.name"], p.count) for p in errors] == [("LPUSH", 1)]


def test_duration_metric_per_operation(otelperf_capture: Capture, client: redis.Redis, prefix: str) -> None:
    client.set(prefix + "k", "v")
    client.get(prefix + "k")
    client.get(prefix + "k")

    points = {
        p.attributes["db.operation.name"]: p
        for p in otelperf_capture.metric_points("db.client.operation.duration")
    }
    assert points["GET"].count == 2
    assert points["SET"].count == 1
    assert dict(points["GET"].attributes) == {"db.system.name": "redis", "db.operation.name": "GET"}
    assert 0.5 in points["GET"].explicit_bounds


@pytest.mark.parametrize(("transaction", "name"), [(True, "MULTI"), (False, "PIPELINE")])
def test_pipeline_is_one_span(
    otelperf_capture: Capture, client: redis.Redis, prefix: str, transaction: bool, name: str
) -> None:
    pipe = client.pipeline(transaction=transaction)
    pipe.set(prefix + "a", "1")
    pipe.get(prefix + "a")
    pipe.get(prefix + "missing")
    assert pipe.execute() == [True, b"1", None]

    assert [s.name for s in otelperf_capture.spans] == [name]
    span = attrs(otelperf_capture.spans[0])
    assert span["db.operation.name"] == "PIPELINE"
    assert span["db.query.text"] == "SET ? ?\nGET ?\nGET ?"
    assert span["otelperf.redis.pipeline_length"] == 3
    assert (span["otelperf.cache.hits"], span["otelperf.cache.misses"]) == (1, 1)


def test_empty_pipeline_makes_no_span(otelperf_capture: Capture, client: redis.Redis) -> None:
    assert client.pipeline().execute() == []
    assert otelperf_capture.spans == []


def test_watched_pipeline_shows_its_immediate_commands(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    client.set(prefix + "counter", "1")
    otelperf_capture.clear()

    with client.pipeline() as pipe:
        pipe.watch(prefix + "counter")
        current = int(pipe.get(prefix + "counter") or 0)
        pipe.multi()
        pipe.set(prefix + "counter", current + 1)
        pipe.execute()

    assert [s.name for s in otelperf_capture.spans] == ["WATCH", "GET", "MULTI"]
    assert client.get(prefix + "counter") == b"2"


async def test_async_command_span_covers_the_awaited_command(
    otelperf_capture: Capture, aclient: redis.asyncio.Redis, prefix: str
) -> None:
    started = time.perf_counter()
    assert await aclient.blpop([prefix + "empty"], timeout=0.1) is None
    elapsed = time.perf_counter() - started

    span = only(otelperf_capture, "BLPOP")
    duration = (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    assert 0.1 <= duration <= elapsed
    assert attrs(span)["db.query.text"] == "BLPOP ? ?"


async def test_async_get_and_parent(
    otelperf_capture: Capture, aclient: redis.asyncio.Redis, prefix: str
) -> None:
    await aclient.set(prefix + "k", "v")
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("handler"):
        assert await aclient.get(prefix + "k") == b"v"

    get = only(otelperf_capture, "GET")
    assert get.parent is not None and get.parent.span_id == only(otelperf_capture, "handler").context.span_id
    assert attrs(get)["otelperf.cache.hit"] is True


async def test_async_pipeline_and_error(
    otelperf_capture: Capture, aclient: redis.asyncio.Redis, prefix: str
) -> None:
    async with aclient.pipeline(transaction=False) as pipe:
        pipe.set(prefix + "a", "1").get(prefix + "a")
        assert await pipe.execute() == [True, b"1"]
    async with aclient.pipeline() as pipe:
        pipe.get(prefix + "a")
        assert await pipe.execute() == [b"1"]
    with pytest.raises(redis.ResponseError):
        await aclient.hget(prefix + "a", "field")

    pipeline = attrs(only(otelperf_capture, "PIPELINE"))
    assert (pipeline["db.query.text"], pipeline["otelperf.redis.pipeline_length"]) == ("SET ? ?\nGET ?", 2)
    transaction = attrs(only(otelperf_capture, "MULTI"))
    assert (transaction["db.operation.name"], transaction["otelperf.cache.hit"]) == ("PIPELINE", True)
    hget = only(otelperf_capture, "HGET")
    assert hget.status.status_code is StatusCode.ERROR
    assert "otelperf.cache.hit" not in attrs(hget)


def test_db_namespace_is_the_database_index(otelperf_capture: Capture, redis_url: str, prefix: str) -> None:
    kwargs = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    r = redis.Redis(host=kwargs["host"], port=kwargs["port"], db=5)
    try:
        r.get(prefix + "nothing")
    finally:
        r.close()
    assert attrs(only(otelperf_capture, "GET"))["db.namespace"] == "5"


def test_secrets_never_reach_telemetry(otelperf_capture: Capture, client: redis.Redis, prefix: str) -> None:
    secret_key = "alice@example.com"
    secret_value = "tok-8c1f5e0d"
    key = prefix + secret_key
    client.set(key, secret_value)
    client.get(key)
    client.mget(key, prefix + "other")
    client.hset(prefix + "h", secret_key, secret_value)
    client.execute_command(f"GET {key}")  # redis-py splits this into words: the key must not name the span
    pipe = client.pipeline()
    pipe.set(key, secret_value).get(key)
    pipe.execute()
    with pytest.raises(redis.ResponseError):  # Redis quotes the arguments of an unknown command
        client.execute_command("NOSUCHCOMMAND", secret_key, secret_value)

    assert len(otelperf_capture.spans) == 7
    for span in otelperf_capture.spans:
        seen = [span.name, span.status.description or ""]
        seen += [str(v) for v in attrs(span).values()]
        seen += [str(v) for event in span.events for v in (event.attributes or {}).values()]
        for text in seen:
            assert secret_key not in text and secret_value not in text, (span.name, text)
    for metric in ("db.client.operation.duration", "otelperf.cache.requests"):
        for point in otelperf_capture.metric_points(metric):
            assert not any(secret_key in str(v) or secret_value in str(v) for v in point.attributes.values())


def test_suppressed_instrumentation_makes_no_span(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        client.get(prefix + "k")
    finally:
        otel_context.detach(token)
    client.get(prefix + "k")
    assert len(otelperf_capture.spans) == 1


def test_uninstrument_restores_the_library(client: redis.Redis, prefix: str) -> None:
    originals = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    assert not any(isinstance(f, wrapt.FunctionWrapper) for f in originals.values()), "instrumented already"

    cap = capture()
    try:
        assert all(isinstance(cls.__dict__[name], wrapt.FunctionWrapper) for cls, name in PATCHED)
        INSTRUMENTOR.instrument(None)  # type: ignore[arg-type]  # idempotent: returns before using ctx
        client.get(prefix + "k")
        assert [s.name for s in cap.spans] == ["GET"]  # wrapped once, not twice
    finally:
        stop_capture(cap)

    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original
    client.get(prefix + "k")
    assert [s.name for s in cap.spans] == ["GET"]
    INSTRUMENTOR.uninstrument()  # idempotent
    assert all(cls.__dict__[name] is originals[cls, name] for cls, name in PATCHED)


# --- under a parent span (the leaf-span path) and at the root (the API path) --------------------------


def _seen(span: ReadableSpan) -> tuple[Any, ...]:
    return (span.name, span.kind, attrs(span), span.status.status_code, span.status.description, span.events)


def _workout(client: redis.Redis, prefix: str) -> None:
    client.set(prefix + "k", "v", ex=60)
    client.get(prefix + "k")
    client.get(prefix + "absent")
    client.mget(prefix + "k", prefix + "absent")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        client.lpush(prefix + "k", "x")
    for transaction in (False, True):
        pipe = client.pipeline(transaction=transaction)
        pipe.set(prefix + "p", "1").get(prefix + "p").get(prefix + "absent")
        assert pipe.execute() == [True, b"1", None]
    with client.pipeline() as pipe:
        pipe.watch(prefix + "k")
        pipe.get(prefix + "k")
        pipe.multi()
        pipe.set(prefix + "k", "w")
        pipe.execute()


def test_spans_under_a_parent_are_the_spans_at_the_root(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    _workout(client, prefix)
    at_root = otelperf_capture.spans
    otelperf_capture.clear()
    with tracer.start_as_current_span("handler") as handler:
        _workout(client, prefix)
    under_parent = [s for s in otelperf_capture.spans if s.name != "handler"]

    assert [s.name for s in under_parent] == [
        "SET", "GET", "GET", "MGET", "LPUSH", "PIPELINE", "MULTI", "WATCH", "GET", "MULTI",
    ]  # fmt: skip
    assert [_seen(s) for s in under_parent] == [_seen(s) for s in at_root]
    assert under_parent[4].status.status_code is StatusCode.ERROR
    handler_ctx = handler.get_span_context()
    for span in under_parent:
        assert span.parent is not None and span.parent.span_id == handler_ctx.span_id
        assert span.context.trace_id == handler_ctx.trace_id
    points = {
        p.attributes["otelperf.cache.result"]: p.value
        for p in otelperf_capture.metric_points("otelperf.cache.requests")
        if p.attributes["otelperf.cache.name"] == "redis"
    }
    assert points == {"hit": 10, "miss": 8}  # both rounds: GET, GET, MGET, two pipelines, the watched GET


def test_blocking_command_under_a_parent_covers_the_wait(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("handler"):
        started = time.perf_counter()
        assert client.blpop([prefix + "empty"], timeout=0.1) is None
        elapsed = time.perf_counter() - started
    span = only(otelperf_capture, "BLPOP")
    duration = (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    assert 0.1 <= duration <= elapsed


def test_pipeline_loading_scripts_is_the_parent_of_its_script_commands(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    # A script Redis has not seen: the pipeline asks SCRIPT EXISTS, then SCRIPT LOADs it.
    script = client.register_script(f"return '{uuid.uuid4().hex}'")
    otelperf_capture.clear()
    with tracer.start_as_current_span("handler") as handler:
        pipe = client.pipeline()
        script(keys=[prefix + "k"], client=pipe)
        assert len(pipe.execute()) == 1

    pipeline = only(otelperf_capture, "MULTI")
    assert pipeline.parent is not None and pipeline.parent.span_id == handler.get_span_context().span_id
    assert sorted(s.name for s in otelperf_capture.children_of(pipeline)) == ["SCRIPT EXISTS", "SCRIPT LOAD"]


def test_unsampled_parent_makes_no_span_and_still_measures(
    otelperf_capture: Capture, client: redis.Redis, prefix: str
) -> None:
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        client.get(prefix + "absent")
    finally:
        otel_context.detach(token)
    assert otelperf_capture.spans == []
    [point] = otelperf_capture.metric_points("db.client.operation.duration")
    assert (point.attributes["db.operation.name"], point.count) == ("GET", 1)


async def test_async_spans_under_a_parent_are_the_spans_at_the_root(
    otelperf_capture: Capture, aclient: redis.asyncio.Redis, prefix: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None

    async def workout() -> None:
        await aclient.set(prefix + "a", "1")
        assert await aclient.get(prefix + "a") == b"1"
        with pytest.raises(redis.ResponseError):
            await aclient.hget(prefix + "a", "field")
        async with aclient.pipeline(transaction=False) as pipe:
            pipe.set(prefix + "b", "2").get(prefix + "b")
            assert await pipe.execute() == [True, b"2"]

    await workout()
    at_root = otelperf_capture.spans
    otelperf_capture.clear()
    with tracer.start_as_current_span("handler") as handler:
        await workout()
    under_parent = [s for s in otelperf_capture.spans if s.name != "handler"]

    assert [s.name for s in under_parent] == ["SET", "GET", "HGET", "PIPELINE"]
    assert [_seen(s) for s in under_parent] == [_seen(s) for s in at_root]
    assert all(
        s.parent is not None and s.parent.span_id == handler.get_span_context().span_id for s in under_parent
    )


def test_reads_in_a_loop_are_an_n_plus_one_at_the_loops_line(client: redis.Redis, prefix: str) -> None:
    cap = capture(detectors="n_plus_one", n_plus_one_min_ms=0)
    try:
        tracer = cap.runtime.tracer
        assert tracer is not None
        with tracer.start_as_current_span("GET /feed"):
            for i in range(6):
                line = sys._getframe().f_lineno + 1
                client.get(f"{prefix}price:{i}")
        (finding,) = [f for f in cap.findings if f.detector == "n_plus_one"]
        function = "test_reads_in_a_loop_are_an_n_plus_one_at_the_loops_line"
        site = f"{os.path.relpath(__file__)}:{line} in {function}()"
        assert finding.details["call_site"] == site
        assert finding.hint == f"batch the reads: one MGET for the 6 GET calls at {site}, or a pipeline"
    finally:
        stop_capture(cap)


async def test_async_reads_in_a_loop_are_an_n_plus_one_at_the_awaiting_line(
    aclient: redis.asyncio.Redis, prefix: str
) -> None:
    cap = capture(detectors="n_plus_one", n_plus_one_min_ms=0)
    lines: list[int] = []

    async def prices() -> None:
        for i in range(6):
            lines.append(sys._getframe().f_lineno + 1)
            await aclient.hget(f"{prefix}prices", str(i))

    try:
        tracer = cap.runtime.tracer
        assert tracer is not None
        with tracer.start_as_current_span("GET /feed"):
            await prices()
        (finding,) = [f for f in cap.findings if f.detector == "n_plus_one"]
        function = "test_async_reads_in_a_loop_are_an_n_plus_one_at_the_awaiting_line.<locals>.prices"
        site = f"{os.path.relpath(__file__)}:{lines[0]} in {function}()"
        assert finding.details["call_site"] == site
        assert finding.hint == f"batch the reads: one HMGET for the 6 HGET calls at {site}, or a pipeline"
    finally:
        stop_capture(cap)
