"""Work a request runs in a task of its own (Starlette's ``BaseHTTPMiddleware`` runs the rest of the
app in one): attributed through the task's context where tasks show it (Python 3.12+, and here a
task class that does on 3.11); a ``def`` handler run from such a task is attributed on every version."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from tests.unit.profiler.test_attribution import BURN_S, burn_in_async_handler, burn_in_sync_handler, get_all

from otelperf.detectors._api import Finding
from otelperf.testing import capture, stop_capture


class ContextTask(asyncio.tasks._PyTask):  # type: ignore[name-defined,misc]
    """A task that shows the context it runs in, as every asyncio task does from Python 3.12."""

    def get_context(self) -> Any:
        return self._context


def app_with_middleware() -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def passthrough(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        return await call_next(request)  # BaseHTTPMiddleware: the routes run in a child task

    @app.get("/async")
    async def async_route() -> dict[str, int]:
        return {"n": burn_in_async_handler(BURN_S)}

    @app.get("/sync")
    def sync_route() -> dict[str, int]:
        return {"n": burn_in_sync_handler(BURN_S)}

    return app


async def with_context_tasks(app: FastAPI, path: str) -> list[httpx.Response]:
    loop = asyncio.get_running_loop()
    loop.set_task_factory(lambda loop, coro, **kwargs: ContextTask(coro, loop=loop, **kwargs))
    return await get_all(app, path)


def top_function(path: str, runner: Callable[[FastAPI, str], Awaitable[list[httpx.Response]]]) -> str | None:
    cap = capture(budgets={"*": 30}, profiler=True, profiler_hz=200)
    try:
        [response] = asyncio.run(runner(app_with_middleware(), path))  # type: ignore[arg-type]
        assert response.status_code == 200
        found: list[Finding] = [f for f in cap.findings if f.detector == "latency_budget"]
        assert len(found) == 1
        profiler = cap.runtime.profiler
        assert profiler is not None and profiler._tasks == {} and profiler._threads == {}  # all let go
        profile = found[0].details.get("app_profile")
        return profile["functions"][0]["function"] if profile else None
    finally:
        stop_capture(cap)


def test_a_child_task_is_attributed_through_its_context_when_tasks_show_it() -> None:
    assert top_function("/async", with_context_tasks) == "burn_in_async_handler"


def test_a_child_task_of_a_task_that_hides_its_context() -> None:
    top = top_function("/async", get_all)
    if sys.version_info >= (3, 12):
        assert top == "burn_in_async_handler"
    else:  # documented: on 3.10/3.11 the child task's work is not the request's
        assert top != "burn_in_async_handler"


@pytest.mark.parametrize("runner", [get_all, with_context_tasks], ids=["asyncio-tasks", "context-tasks"])
def test_a_def_handler_run_from_a_child_task_is_attributed(runner: Any) -> None:
    assert top_function("/sync", runner) == "burn_in_sync_handler"
