"""Load tests: the example's Locust scenarios, headless, with the budgets as thresholds.

    otelperf loadtest --scenario crud --duration 30s --users 10 --host http://127.0.0.1:8000

- :mod:`.thresholds`: budgets -> per-route checks (pure; unit-tested)
- :mod:`.locust_plugin`: imported by locustfiles; OTLP client histogram, thresholds at exit
- :mod:`.runner`: runs Locust as a child process and reads back its summary

The command is :mod:`otelperf.cli.loadtest`.
"""

from __future__ import annotations

from otelperf.loadtest.runner import SCENARIOS, LoadOptions, LoadTestError, parse_duration, run_load

__all__ = ["SCENARIOS", "LoadOptions", "LoadTestError", "parse_duration", "run_load"]
