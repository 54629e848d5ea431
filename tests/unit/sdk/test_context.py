"""otelperf._sdk.context.get_current must always be the API's current context."""

from __future__ import annotations

import asyncio
import threading

import pytest
from opentelemetry import context as otel_context

from otelperf._sdk import context as _context


@pytest.mark.fast_paths
def test_it_reads_the_apis_contextvar_with_this_api() -> None:
    assert _context.reads_the_contextvar  # else every read takes the API's two Python calls


def test_it_is_the_apis_current_context_when_attached_detached_and_in_threads_and_tasks() -> None:
    assert _context.get_current() is otel_context.get_current()
    token = otel_context.attach(otel_context.set_value("k", "v"))
    try:
        assert _context.get_current() is otel_context.get_current()
        assert _context.get_current().get("k") == "v"
        seen: list[object] = []
        thread = threading.Thread(target=lambda: seen.append(_context.get_current().get("k")))
        thread.start()
        thread.join()
        assert seen == [None]  # a new thread starts from an empty context, as with the API

        async def in_task() -> object:
            return _context.get_current().get("k")

        assert asyncio.run(in_task()) == "v"  # tasks copy the context they were created in
    finally:
        otel_context.detach(token)
    assert _context.get_current() is otel_context.get_current()
    assert _context.get_current().get("k") is None
