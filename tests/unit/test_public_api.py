"""The public surface of ``otelperf``, pinned: a name added or dropped is a decision."""

from __future__ import annotations

import otelperf


def test_the_public_names() -> None:
    assert sorted(otelperf.__all__) == sorted(
        [
            "ConfigError",
            "Finding",
            "Runtime",
            "Settings",
            "__version__",
            "expect",
            "findings",
            "init",
            "instrument_cache",
            "shutdown",
        ]
    )


def test_every_public_name_resolves() -> None:
    assert all(getattr(otelperf, name) is not None for name in otelperf.__all__)
