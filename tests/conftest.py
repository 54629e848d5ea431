"""Shared fixtures: URLs of the real PostgreSQL and Redis (``make services`` starts them).

The ``otelperf_capture`` fixture comes from otelperf's own pytest plugin (``otelperf.testing``).
"""

from __future__ import annotations

import os

import pytest


def skip_or_fail(message: str) -> None:
    """A missing prerequisite (a service, the backend binaries): fail under CI, skip on a laptop."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _service_url(variable: str, what: str) -> str:
    url = os.environ.get(variable)
    if url:
        return url
    skip_or_fail(f"{variable} is not set: {what} tests need it. Run `make services` (or `make test`).")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """``postgresql://...`` of a real PostgreSQL, from OTELPERF_TEST_POSTGRES_URL."""
    return _service_url("OTELPERF_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://...`` of a real Redis, from OTELPERF_TEST_REDIS_URL."""
    return _service_url("OTELPERF_TEST_REDIS_URL", "Redis")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the end-to-end tests last, after tests/integration/test_stack.py, and the delivery tests
    last of all.

    test_stack.py starts and stops its own stack on the fixed ports; the e2e session fixture starts
    the stack once and leaves it up for the rest of the session, so it must come after them.
    test_e2e_delivery.py and then test_e2e_faults.py restart Jaeger and the collector (which
    empties an in-memory Jaeger and resets the collector's counters), so nothing may read the
    backend after them.
    """
    _deselect_fast_path_tests_when_forced_off(config, items)
    restarting = ("test_e2e_delivery.py", "test_e2e_faults.py")

    def order(item: pytest.Item) -> tuple[bool, int]:
        e2e = item.path.parent.name == "e2e" and item.path.parent.parent.name == "tests"
        name = item.path.name
        return e2e, restarting.index(name) + 1 if e2e and name in restarting else 0

    items.sort(key=order)


def _deselect_fast_path_tests_when_forced_off(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With OTELPERF_SDK_FAST_PATHS=0 (``make test``'s forced-off leg) every span takes the SDK's
    path: the tests that check a fast path itself (``@pytest.mark.fast_paths``) have nothing to
    check, and are deselected (counted in pytest's summary); every other test must pass as it is."""
    from otelperf._sdk.fast_paths import env_forced_off

    if not env_forced_off():
        return
    kept = [item for item in items if item.get_closest_marker("fast_paths") is None]
    deselected = [item for item in items if item.get_closest_marker("fast_paths") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
