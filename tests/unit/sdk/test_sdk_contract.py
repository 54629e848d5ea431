"""What a user set on the SDK is honoured: processors that pair on_start with on_end, span limits,
a disabled tracer, the fast paths forced off; and the request span answers like the SDK's span.

The workload is a real FastAPI app with SQLAlchemy (SQLite) and an instrumented cache, served by
Starlette's TestClient under otelperf with in-memory export.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cachetools
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

import otelperf
from otelperf._sdk import describe
from otelperf._sdk.fast_paths import env_forced_off
from otelperf._sdk.request_span import RequestSpan
from otelperf.testing import Capture, capture, stop_capture


class PairingProcessor(SpanProcessor):
    """Like Sentry's OpenTelemetry processor: keeps state from on_start and needs on_end to match."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}
        self.unmatched_ends: list[str] = []
        self.completed: list[str] = []
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.open[span.get_span_context().span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            assert span.context is not None
            if self.open.pop(span.context.span_id, None) is None:
                self.unmatched_ends.append(span.name)
            else:
                self.completed.append(span.name)


def _expected(reason: str) -> str:
    """The reason the span paths are off: the given one, or the switch in the forced-off test leg."""
    return "forced off" if env_forced_off() else reason


def _app(db: Path) -> FastAPI:
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("INSERT INTO item (name) VALUES ('a-rather-long-item-name-here')"))
    prices = otelperf.instrument_cache(cachetools.LRUCache(maxsize=16), name="prices")
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            name = conn.execute(text("SELECT name FROM item WHERE id = :id"), {"id": item_id}).scalar()
            conn.execute(text("SELECT count(*) FROM item"))
        price = prices.get(item_id)
        current = trace.get_current_span()
        current.set_attribute("app.note", "x" * 40)
        # An SDK span has a name; so must otelperf's (a disabled tracer gives a NonRecordingSpan).
        return {"name": name, "price": price, "span": getattr(current, "name", None)}

    return app


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "contract.db"


def _serve(cap: Capture, db: Path, requests: int = 3) -> list[ReadableSpan]:
    with TestClient(_app(db)) as client:
        for _ in range(requests):
            response = client.get("/items/1")
            assert response.status_code == 200, response.text
            span_name = response.json()["span"]
            assert span_name is None or span_name.startswith("GET")  # the SERVER span's, read by the app
    cap.flush()
    return cap.spans


def _shape(spans: list[ReadableSpan]) -> list[tuple[str, str, bool]]:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    return sorted((s.name, str(s.kind), s.parent is not None and s.parent.span_id in by_id) for s in spans)


@pytest.fixture
def running(db: Path) -> Iterator[Capture]:
    cap = capture()
    try:
        yield cap
    finally:
        stop_capture(cap)


def test_a_processor_added_after_init_that_pairs_on_start_with_on_end_sees_every_span(
    running: Capture, db: Path
) -> None:
    pairing = PairingProcessor()
    assert running.runtime.tracer_provider is not None
    running.runtime.tracer_provider.add_span_processor(pairing)
    spans = _serve(running, db)
    statements = [s for s in spans if s.name.startswith("SELECT")]
    lookups = [s for s in spans if "prices" in s.name]
    assert len(statements) == 6 and len(lookups) == 3  # statement and lookup spans: the leaf kind
    assert pairing.unmatched_ends == []
    assert pairing.open == {}
    assert sorted(pairing.completed) == sorted(s.name for s in spans)
    reasons = dict((name, (on, why)) for name, on, why in describe(running.runtime.tracer))
    on, why = reasons["leaf and request spans built directly"]
    assert not on and _expected("PairingProcessor implements on_start") in why


@pytest.mark.fast_paths
def test_with_no_foreign_processor_the_fast_paths_are_on_and_give_the_same_spans(db: Path) -> None:
    cap = capture()
    try:
        reasons = {name: on for name, on, _ in describe(cap.runtime.tracer)}
        assert reasons["leaf and request spans built directly"]
        fast = _shape(_serve(cap, db))
    finally:
        stop_capture(cap)
    cap = capture(sdk_fast_paths=False)
    try:
        reasons = {name: on for name, on, _ in describe(cap.runtime.tracer)}
        assert not reasons["leaf and request spans built directly"]
        slow_spans = _serve(cap, db)
        assert not any(type(s) is RequestSpan for s in slow_spans)
        slow = _shape(slow_spans)
    finally:
        stop_capture(cap)
    assert fast == slow
    names = [name for name, _, _ in fast]
    assert names.count("GET /items/{item_id}") == 3
    assert len([n for n in names if n.startswith("SELECT")]) == 6
    assert len([n for n in names if "prices" in n]) == 3


def test_span_limits_from_the_environment_apply_to_every_span(
    monkeypatch: pytest.MonkeyPatch, db: Path
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10")
    cap = capture()
    try:
        spans = _serve(cap, db, requests=1)
    finally:
        stop_capture(cap)
    long_values = {
        (s.name, key): value
        for s in spans
        for key, value in (s.attributes or {}).items()
        if isinstance(value, str) and len(value) > 10
    }
    assert long_values == {}
    statement = next(s for s in spans if s.name.startswith("SELECT"))
    assert statement.attributes is not None
    assert statement.attributes["db.query.text"] == "SELECT nam"  # cut by the SDK's limit


@pytest.mark.skipif(
    not hasattr(TracerProvider, "_set_tracer_configurator"), reason="this SDK has no tracer configurator"
)
def test_a_tracer_disabled_by_a_configurator_emits_no_span(running: Capture, db: Path) -> None:
    from opentelemetry.sdk.trace import _TracerConfig

    provider = running.runtime.tracer_provider
    assert provider is not None
    provider._set_tracer_configurator(tracer_configurator=lambda scope: _TracerConfig(is_enabled=False))
    spans = _serve(running, db)
    assert spans == []
    reasons = {name: why for name, _, why in describe(running.runtime.tracer)}
    assert (
        _expected("a tracer configurator disabled the tracer")
        in reasons["leaf and request spans built directly"]
    )


@pytest.mark.fast_paths
def test_the_request_span_offers_the_sdk_spans_whole_public_api(running: Capture) -> None:
    tracer = running.runtime.tracer
    assert tracer is not None
    from otelperf._sdk.request_span import RequestSpans

    ours = RequestSpans(tracer).start("GET", Context(), trace.SpanKind.SERVER, {"url.path": "/x"})
    assert type(ours) is RequestSpan
    sdk = (
        TracerProvider()
        .get_tracer("t")
        .start_span("GET", kind=trace.SpanKind.SERVER, attributes={"url.path": "/x"})
    )
    public = sorted(name for name in dir(sdk) if not name.startswith("_"))
    assert len(public) >= 25
    missing = [name for name in public if not hasattr(ours, name)]
    assert missing == []
    for name in public:
        assert callable(getattr(ours, name)) == callable(getattr(sdk, name)), name
    for span in (ours, sdk):
        span.set_attribute("app.k", "v")
        span.add_event("e", {"n": 1})
        span.update_name("GET /x")
    for name in ("name", "kind", "dropped_attributes", "dropped_events", "dropped_links"):
        assert getattr(ours, name) == getattr(sdk, name), name
    assert (ours.status.status_code, ours.status.description) == (
        sdk.status.status_code,
        sdk.status.description,
    )
    assert dict(ours.attributes or {}) == dict(sdk.attributes or {})
    assert [(e.name, dict(e.attributes or {})) for e in ours.events] == [
        (e.name, dict(e.attributes or {})) for e in sdk.events
    ]
    assert ours.parent is None and ours.end_time is None and ours.start_time and ours.context.is_valid
    assert ours.resource is tracer.resource and ours.instrumentation_scope.name == "otelperf"
    assert '"name": "GET /x"' in ours.to_json()
    with ours:
        pass
    assert ours.end_time is not None and not ours.is_recording()
