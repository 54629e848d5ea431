"""The local telemetry backend (OpenTelemetry Collector, Jaeger, Prometheus, optional
Alertmanager) run as loopback processes with the repo's configs.

>>> from otelperf.stack import Stack
>>> stack = Stack()              # doctest: +SKIP
>>> stack.up(timeout=60)         # doctest: +SKIP
>>> stack.status().all_up        # doctest: +SKIP
True

Modules: ``components`` (the process table as data, binary lookup), ``ports`` (free or held by
whom), ``state`` (pid records, logs), ``metrics`` (the collector's span counters), ``manager``
(:class:`Stack`: the whole stack, or one component), ``results`` (what it answers). The command
``otelperf stack ...`` is :mod:`otelperf.cli.stack`.
"""

from __future__ import annotations

from otelperf.stack.components import StackError
from otelperf.stack.manager import ComponentStatus, Stack, StackStatus, UpResult
from otelperf.stack.metrics import SpanFlow

__all__ = ["ComponentStatus", "SpanFlow", "Stack", "StackError", "StackStatus", "UpResult"]
