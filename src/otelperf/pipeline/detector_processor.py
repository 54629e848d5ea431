"""The span processor that runs the detectors, placed in front of the exporting processor.

On the app's thread ``on_end`` only files the span under its trace (a dict lookup and an append
under a lock). When a request's local root ends (a span without a parent, or with a remote one),
its spans go as one item on a bounded queue to the detector thread, which runs the detectors,
writes each finding into the trace as a span event (on a copy of the span: an ended span cannot
change), decides what to export, and hands the spans to the exporting processor.

Bounded everywhere, nothing lost silently: at most ``max_traces`` open traces (the oldest is
passed on unanalyzed when a new one needs room), ``max_spans_per_trace`` buffered spans per trace
(later ones pass straight on), ``queue_size`` requests waiting for analysis (when full, a request
is passed on unanalyzed); each case is counted in :class:`PipelineStats`. The detector thread works
in batches (every 0.2 s, or when 256 requests wait), so a request costs the app's thread two list
appends and no thread switch.

Export policy: with ``export_share`` < 1 (production mode) every request is still analyzed and
counted in metrics, but only traces with a finding, an error, or a trace id inside the share
(deterministic by trace id, so a distributed trace is kept or dropped whole) are exported.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Status, StatusCode

from otelperf import _names
from otelperf._runtime import guard as _internal
from otelperf._sdk import leaf as _leaf
from otelperf._sdk import readable as _readable
from otelperf._sdk import span_context as _ctx
from otelperf._sdk.fast_paths import processor_reason
from otelperf.detectors._api import Detector, Finding, TraceView, detail_attributes, hex_span_id
from otelperf.detectors._findings import FindingsSink
from otelperf.detectors.expect import mark_expected
from otelperf.pipeline.share import LOW_64_BITS, share_limit

logger = logging.getLogger("otelperf.detectors")

WAKE_INTERVAL_S = 0.2
WAKE_BATCH = 256
SHUTDOWN_WAIT_S = 5.0  # for the detector thread to finish what is queued, then to exit
_BY_INDEX = _readable.FIELDS_HOLD  # ReadableSpan fields read directly (_sdk.readable; checked at import)
# Shared "unset" statuses: the SDK's default, and those of otelperf's leaf and request spans.
_SDK_DEFAULT_STATUS = getattr(
    inspect.signature(ReadableSpan.__init__).parameters.get("status"), "default", None
)
_PLAIN_UNSET = frozenset(
    status
    for status in (_SDK_DEFAULT_STATUS, _leaf.UNSET)
    if isinstance(status, Status) and status.status_code is StatusCode.UNSET
)


@dataclass
class PipelineStats:
    analyzed: int = 0
    evicted_traces: int = 0
    overflow_spans: int = 0
    queue_full: int = 0
    not_exported: int = 0
    detector_errors: int = 0


class DetectorSpanProcessor(SpanProcessor):
    def __init__(
        self,
        inner: SpanProcessor,
        detectors: Sequence[Detector],
        sink: FindingsSink,
        *,
        export_share: float = 1.0,
        max_traces: int = 4096,
        max_spans_per_trace: int = 2000,
        queue_size: int = 2048,
        expected: Sequence[Any] = (),
    ) -> None:
        self._inner = inner
        self._expected = tuple(expected)  # [[expected]] of the budgets file (detectors/expect.py)
        self._detectors = list(detectors)
        self._sink = sink
        self._export_share = export_share
        self._share_limit = share_limit(export_share)
        self._max_traces = max_traces
        self._max_spans = max_spans_per_trace
        self._queue_size = queue_size
        self.stats = PipelineStats()
        self._shutdown = False
        self._start_worker()
        if hasattr(os, "register_at_fork"):
            # A forked child has the buffers but not the thread; weakly, so that a processor
            # that was shut down and dropped is not kept alive by the fork hook.
            restart = weakref.WeakMethod(self._start_worker)
            os.register_at_fork(after_in_child=lambda: _call(restart))

    def _start_worker(self) -> None:
        if self._shutdown:
            return
        self._lock = threading.Lock()
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        # Finished requests wait here for the detector thread, which wakes every WAKE_INTERVAL_S
        # (or sooner when WAKE_BATCH are waiting) and takes them all: no thread hand-off per
        # request, which would cost more than the analysis itself.
        self._ready: deque[tuple[ReadableSpan, list[ReadableSpan]]] = deque()
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._busy = False
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="otelperf-detectors", daemon=True)
        self._worker.start()

    def set_detectors(self, detectors: Sequence[Detector]) -> None:
        self._detectors = list(detectors)

    # --- the app's thread ---
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._inner.on_start(span, parent_context)

    def otelperf_end_only(self) -> bool:
        """Whether the processor this one wraps needs nothing but ended spans."""
        return processor_reason(self._inner) is None

    def on_end(self, span: ReadableSpan) -> None:
        if _BY_INDEX and type(span) is ReadableSpan:  # leaf and request spans: their fields
            ctx, parent = _readable.context_and_parent(span)
            if ctx is None or self._shutdown:
                self._inner.on_end(span)
                return
            trace_id = _ctx.trace_id(ctx)
            local_root = parent is None or _ctx.is_remote(parent)
        else:
            ctx, parent = span.context, span.parent
            if ctx is None or self._shutdown:
                self._inner.on_end(span)
                return
            trace_id = ctx.trace_id
            local_root = parent is None or parent.is_remote
        if local_root:
            with self._lock:
                buffered = self._traces.pop(trace_id, None)
                others: list[ReadableSpan] = []
                if buffered is not None:
                    # Another request of this trace may still be open in this process (a service
                    # calling itself): take only this request's spans, leave the rest buffered.
                    buffered, others = _split_request(_ctx.span_id(ctx), buffered)
                    if others:
                        self._traces[trace_id] = others
            request = [span] if not buffered else [*buffered, span]
            ready = self._ready
            if len(ready) >= self._queue_size:
                self.stats.queue_full += 1
                self._pass_on(request)
                return
            ready.append((span, request))
            if len(ready) >= WAKE_BATCH:
                self._wake.set()
            return
        evicted: list[ReadableSpan] | None = None
        with self._lock:
            traces = self._traces
            spans = traces.get(trace_id)
            if spans is None:  # the request's first span to end
                if len(traces) >= self._max_traces:
                    _, evicted = traces.popitem(last=False)
                traces[trace_id] = [span]
                if evicted is None:
                    return
            elif len(spans) < self._max_spans:
                spans.append(span)
                return
        if evicted is not None:
            self.stats.evicted_traces += 1
            self._pass_on(evicted)
            return
        self.stats.overflow_spans += 1
        self._inner.on_end(span)

    # --- the detector thread ---
    def _run(self) -> None:
        ready = self._ready
        while True:
            self._wake.wait(WAKE_INTERVAL_S)
            self._wake.clear()
            with self._drained:
                self._busy = True
            while ready:
                root, spans = ready.popleft()
                try:
                    self._analyze(root, spans)
                except Exception as exc:  # never let the thread die: count and go on
                    _internal.record_internal_error("detectors.worker", exc)
            with self._drained:
                self._busy = False
                self._drained.notify_all()
            if self._stopping and not ready:
                return

    def _wait_drained(self, timeout: float) -> bool:
        self._wake.set()
        with self._drained:
            return self._drained.wait_for(lambda: not self._ready and not self._busy, timeout)

    def _analyze(self, root: ReadableSpan, spans: list[ReadableSpan]) -> None:
        view = TraceView(root, spans)
        findings: list[Finding] = []
        for detector in self._detectors:
            try:
                found = detector.analyze(view)
                if found:
                    findings.extend(found)
            except Exception as exc:
                self.stats.detector_errors += 1
                _internal.record_internal_error(f"detector {getattr(detector, 'name', detector)!r}", exc)
        self.stats.analyzed += 1
        if findings:
            findings = mark_expected(view, findings, self._expected)
            self._sink.record(findings)
            spans = _annotate(spans, root, findings)
        if self._export_share >= 1.0 or findings or self._keep(root, spans):
            self._pass_on(spans)
        else:
            self.stats.not_exported += len(spans)

    def _keep(self, root: ReadableSpan, spans: list[ReadableSpan]) -> bool:
        fields = _readable.FIELDS_HOLD
        ctx = _readable.context_of(root) if fields and type(root) is ReadableSpan else root.context
        # In the share by trace id (pipeline.share.in_share(), inline). Checked first: it is cheaper.
        if ctx is not None and (_ctx.trace_id(ctx) & LOW_64_BITS) < self._share_limit:
            return True
        for span in spans:
            status = _readable.status_of(span) if fields and type(span) is ReadableSpan else span.status
            # Most spans carry one of a few shared "unset" statuses: known without reading them.
            if status not in _PLAIN_UNSET and status is not None and status.status_code is StatusCode.ERROR:
                return True
        return False

    def _pass_on(self, spans: list[ReadableSpan]) -> None:
        for span in spans:
            self._inner.on_end(span)

    # --- lifecycle ---
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        drained = self._wait_drained(timeout_millis / 1000)
        return self._inner.force_flush(timeout_millis) and drained

    def flush_open_traces(self) -> None:
        """Pass on spans whose request has not ended (at shutdown: nothing is lost)."""
        with self._lock:
            pending = list(self._traces.values())
            self._traces.clear()
        for spans in pending:
            self._pass_on(spans)

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._wait_drained(SHUTDOWN_WAIT_S)
        self._shutdown = True
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout=SHUTDOWN_WAIT_S)
        # A request that ended while shutdown began can land in the queue after the worker's last
        # look at it: analyze what is left here, so nothing is lost. Detectors run on one thread at
        # a time: should the worker still be busy (stuck past the timeout), pass them on unanalyzed.
        worker_done = not self._worker.is_alive()
        while self._ready:
            root, spans = self._ready.popleft()
            if not worker_done:
                self._pass_on(spans)
                continue
            try:
                self._analyze(root, spans)
            except Exception as exc:
                _internal.record_internal_error("detectors.shutdown", exc)
                self._pass_on(spans)
        self.flush_open_traces()
        self._inner.shutdown()


def _call(method_ref: weakref.WeakMethod[Any]) -> None:
    method = method_ref()
    if method is not None:
        method()


def _app_profile_attributes(finding: Finding) -> dict[str, str]:
    """A latency-budget finding's profile (otelperf/profiler/): its summary and folded stacks."""
    profile = finding.details.get("app_profile")
    if not isinstance(profile, dict):
        return {}
    return {
        _names.FINDING_APP_PROFILE: str(profile.get("summary", "")),
        _names.FINDING_APP_FOLDED: str(profile.get("folded", "")),
    }


def _annotate(spans: list[ReadableSpan], root: ReadableSpan, findings: list[Finding]) -> list[ReadableSpan]:
    """Copies of the spans that findings point at, with one event per finding."""
    by_id = {hex_span_id(s): s for s in spans}
    events: dict[str, list[Event]] = {}
    for f in findings:
        anchor = f.anchor_span_id if f.anchor_span_id in by_id else hex_span_id(root)
        events.setdefault(anchor, []).append(
            Event(
                _names.FINDING_EVENT,
                {
                    **detail_attributes(f),  # call site, relationship, parent query (N+1)...
                    _names.FINDING_DETECTOR: f.detector,
                    _names.FINDING_SEVERITY: f.severity,
                    **_app_profile_attributes(f),  # a latency-budget finding's profile, if any
                    _names.FINDING_FINGERPRINT: f.fingerprint,
                    _names.FINDING_STATEMENT: f.statement,
                    _names.FINDING_COUNT: f.count,
                    _names.FINDING_DURATION_MS: round(f.duration_ms, 3),
                    _names.FINDING_HINT: f.hint,
                    _names.FINDING_SPAN_IDS: f.span_ids[: _names.FINDING_SPAN_IDS_MAX],
                    **({_names.FINDING_PLAN: f.details["plan"]} if "plan" in f.details else {}),
                    **({_names.FINDING_EXPECTED: f.expected} if f.expected is not None else {}),
                },
                root.end_time,
            )
        )
    root_id = hex_span_id(root)
    detectors = sorted({f.detector for f in findings})
    out = []
    for span in spans:
        sid = hex_span_id(span)
        extra_events = events.get(sid)
        if extra_events is None and sid != root_id:
            out.append(span)
            continue
        attributes = dict(span.attributes or {})
        if sid == root_id:
            attributes[_names.FINDINGS_COUNT] = len(findings)
            attributes[_names.FINDINGS_DETECTORS] = detectors
        out.append(
            ReadableSpan(
                name=span.name,
                context=span.context,
                parent=span.parent,
                resource=span.resource,
                attributes=attributes,
                events=(*span.events, *(extra_events or ())),
                links=span.links,
                kind=span.kind,
                status=span.status,
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=span.instrumentation_scope,
            )
        )
    return out


def _split_request(root_id: int, spans: list[ReadableSpan]) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """The spans under local root ``root_id`` and the others, keeping end order.

    Children end before their parents, so walking from the latest span back meets a parent before
    its children; the rare child that outlived its parent is caught by the repeat.
    """
    ids = {root_id}
    add = ids.add
    for span in reversed(spans):  # the common case: one request per trace, all its spans
        if _BY_INDEX and type(span) is ReadableSpan:  # their fields, read directly
            context, parent = _readable.context_and_parent(span)
            if parent is None or _ctx.is_remote(parent) or _ctx.span_id(parent) not in ids:
                break
            add(_ctx.span_id(context))
            continue
        parent, context = span.parent, span.context
        if parent is None or parent.is_remote or parent.span_id not in ids:
            break
        add(context.span_id)  # type: ignore[union-attr]
    else:
        return spans, []
    ids = {root_id}
    mine: set[int] = set()
    pending = True
    while pending:
        pending = False
        for i in range(len(spans) - 1, -1, -1):
            if i in mine:
                continue
            span = spans[i]
            parent = span.parent
            if parent is not None and not parent.is_remote and parent.span_id in ids:
                ids.add(span.context.span_id)  # type: ignore[union-attr]
                mine.add(i)
                pending = True
        if len(mine) == len(spans):
            break
    if len(mine) == len(spans):
        return spans, []
    return [s for i, s in enumerate(spans) if i in mine], [s for i, s in enumerate(spans) if i not in mine]
