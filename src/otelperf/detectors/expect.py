"""Expected findings: an N+1 or a slow query the team knows about and accepts.

Two ways to say so, both ending in :attr:`Finding.expected` (the reason):

- in code, around what runs the statements: ``with otelperf.expect("n_plus_one"):`` or
  ``@otelperf.expect("slow_query", reason=...)`` on a sync or async function. It opens a span
  (``otelperf.expect``, child of the current one, current for the block); the detector thread then
  treats a finding as expected when every span it concerns lies under such a span that matches it.
  Span parentage follows the context, so this is right across threads and asyncio tasks: a task
  started outside the block (a concurrent ``asyncio.gather`` branch) is not covered, one started
  inside it is. The cost is one span per block (written in one step when the block ends, like an
  HTTP client call's), nothing per statement.
- in the budgets file, by route and/or fingerprint (:class:`~otelperf.budgets.ExpectedFinding`)::

      [[expected]]
      detector = "n_plus_one"
      route = "GET /admin/orders"
      reason = "admin page, 20 rows at most"

Narrowing in code: ``fingerprint=`` (as in the finding) or ``statement=`` (a substring of the
finding's statement, which is sanitized: no literal values; it is exported on the span, so give
table and column names, never data). Without either, every finding of that detector under the
block is expected.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from otelperf import _names
from otelperf._runtime import guard as _internal
from otelperf._sdk import leaf as _leaf
from otelperf._sdk import span_context as _ctx
from otelperf.detectors._api import Finding, TraceView, attributes_of, hex_span_id

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Expect", "expect", "mark_expected"]


class Expect:
    """What :func:`expect` returns: a context manager (``with``) and a decorator (sync or async)."""

    __slots__ = ("_attributes",)

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self._attributes = dict(attributes)

    def __enter__(self) -> Expect:
        try:
            runtime = _current_runtime()
            if runtime is None or runtime.tracer is None:
                return self
            leaf = _leaf_spans(runtime.tracer)
            parent = _leaf.parent_in(None)
            if _ctx.is_valid(parent) and _ctx.trace_flags(parent) & _SAMPLED and leaf.enabled:
                # The usual case: the marker's span is written in one step when the block ends (as
                # an HTTP client call's is); meanwhile its context is current, for its children.
                context = leaf.context_for(parent)
                token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(context)))
                opened: Any = (leaf, parent, context, time.time_ns())
            else:
                opened = runtime.tracer.start_span(_names.EXPECT_SPAN, attributes=self._attributes)
                token = otel_context.attach(trace.set_span_in_context(opened))
            _OPEN.set((*_OPEN.get(), (opened, token)))
        except Exception as exc:
            _internal.swallow("expect.enter", exc)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            stack = _OPEN.get()
            if not stack:
                return
            opened, token = stack[-1]
            _OPEN.set(stack[:-1])
            otel_context.detach(token)
            if type(opened) is tuple:
                leaf, parent, context, start_ns = opened
                leaf.emit(
                    _names.EXPECT_SPAN,
                    SpanKind.INTERNAL,
                    parent,
                    start_ns,
                    time.time_ns(),
                    self._attributes,  # shared by the marker's spans, never changed
                    context=context,
                )
            else:
                opened.end()
        except Exception as error:
            _internal.swallow("expect.exit", error)

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]


_SAMPLED = 0x01  # the W3C "sampled" trace flag
# The markers open in this context (thread or asyncio task), innermost last: one Expect object may
# be entered by several threads or tasks at once (a module-level marker, a decorated function),
# and a ``with`` enters and exits in one context.
_OPEN: ContextVar[tuple[tuple[Any, Any], ...]] = ContextVar("otelperf_expect_open", default=())
_leaf_cache: tuple[Any, Any] | None = None  # (tracer, its LeafSpans): one runtime at a time


def _current_runtime() -> Any:
    # Imported on first use: _runtime.setup imports the pipeline, which imports this module.
    from otelperf._runtime.setup import current

    return current()


def _leaf_spans(tracer: Any) -> Any:
    global _leaf_cache
    cached = _leaf_cache
    if cached is not None and cached[0] is tracer:
        return cached[1]
    leaf = _leaf.LeafSpans(tracer)
    _leaf_cache = (tracer, leaf)
    return leaf


def expect(
    detector: str, *, reason: str = "", fingerprint: str | None = None, statement: str | None = None
) -> Expect:
    """Mark the findings of ``detector`` made by the code inside as expected.

    >>> with otelperf.expect("n_plus_one", reason="admin page, 20 rows at most"):  # doctest: +SKIP
    ...     for order in orders:
    ...         order.items

    >>> @otelperf.expect("slow_query", statement="FROM audit_log", reason="nightly export")  # doctest: +SKIP
    ... async def export_audit_log(session): ...

    Expected findings are still recorded (``Finding.expected`` holds the reason), counted apart
    (``expected="true"`` on ``otelperf_findings_total``), left out of the generated alerts and of
    the pytest plugin's assertions. Without a running otelperf it does nothing.
    """
    from otelperf.config import KNOWN_DETECTORS

    if detector not in KNOWN_DETECTORS:
        raise ValueError(
            f"otelperf.expect(): unknown detector {detector!r}; one of {', '.join(KNOWN_DETECTORS)}"
        )
    attributes = {_names.EXPECT_DETECTOR: detector, _names.EXPECT_REASON: reason}
    if fingerprint is not None:
        attributes[_names.EXPECT_FINGERPRINT] = fingerprint
    if statement is not None:
        attributes[_names.EXPECT_STATEMENT] = statement
    return Expect(attributes)


# --- the detector thread ------------------------------------------------------------------------


def mark_expected(trace: TraceView, findings: list[Finding], rules: Sequence[Any] = ()) -> list[Finding]:
    """``findings`` with ``expected`` set where an ``otelperf.expect`` span or a file rule covers them.

    Runs only for requests with findings (rare); reads the request's spans once for expect spans.
    """
    marks = _expect_spans(trace.spans)
    if not marks and not rules:
        return findings
    parents: dict[str, str] | None = None
    out = []
    for finding in findings:
        reason = _file_reason(finding, rules)
        if reason is None and marks:
            if parents is None:
                parents = _parents(trace.spans)
            reason = _code_reason(finding, marks, parents)
        out.append(finding if reason is None else dataclasses.replace(finding, expected=reason))
    return out


def _expect_spans(spans: Iterable[Any]) -> dict[str, Mapping[str, Any]]:
    found = {}
    for span in spans:
        if span.name == _names.EXPECT_SPAN:
            attributes = attributes_of(span)
            if _names.EXPECT_DETECTOR in attributes:
                found[hex_span_id(span)] = attributes
    return found


def _parents(spans: Iterable[Any]) -> dict[str, str]:
    parents = {}
    for span in spans:
        parent = span.parent
        if parent is not None and not parent.is_remote:
            parents[hex_span_id(span)] = format(parent.span_id, "016x")
    return parents


def _file_reason(finding: Finding, rules: Sequence[Any]) -> str | None:
    for rule in rules:
        if rule.matches(finding.detector, finding.route, finding.fingerprint):
            return str(rule.reason)
    return None


def _code_reason(
    finding: Finding, marks: Mapping[str, Mapping[str, Any]], parents: Mapping[str, str]
) -> str | None:
    """The reason of the expect span over every span of the finding, if one covers them all."""
    ids = finding.span_ids or (finding.anchor_span_id,)
    reason: str | None = None
    for span_id in ids:
        found = _covering(span_id, finding, marks, parents)
        if found is None:
            return None
        reason = found if reason is None else reason
    return reason


def _covering(
    span_id: str, finding: Finding, marks: Mapping[str, Mapping[str, Any]], parents: Mapping[str, str]
) -> str | None:
    current: str | None = span_id
    for _ in range(256):  # a bound on the walk up: a broken parent chain cannot loop forever
        if current is None:
            return None
        attributes = marks.get(current)
        if attributes is not None and _matches(attributes, finding):
            return str(attributes.get(_names.EXPECT_REASON, ""))
        current = parents.get(current)
    return None


def _matches(attributes: Mapping[str, Any], finding: Finding) -> bool:
    if attributes.get(_names.EXPECT_DETECTOR) != finding.detector:
        return False
    fingerprint = attributes.get(_names.EXPECT_FINGERPRINT)
    if fingerprint is not None and fingerprint != finding.fingerprint:
        return False
    statement = attributes.get(_names.EXPECT_STATEMENT)
    return statement is None or str(statement) in finding.statement
