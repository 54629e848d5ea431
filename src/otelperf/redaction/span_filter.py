"""The export-side safety net: exception text that otelperf did not write itself, scrubbed.

otelperf sanitizes every exception it records (:mod:`otelperf.redaction.exceptions`), but the
application's own spans and other instrumentations call the SDK's ``Span.record_exception``,
which writes ``str(exc)`` and the full traceback, and ``Span.set_status`` with any description.
Only the text is left by the time a span ends, so this pass works on text
(:func:`~otelperf.redaction.text.scrub_error_text`): ``[parameters: ...]`` removed, ``[SQL: ...]``
sanitized, ``DETAIL:`` lines dropped, URLs and credential pairs redacted, and the
``exception_messages`` setting applied to application exceptions.

An ended span cannot change, so :func:`scrub_span` returns a new ``ReadableSpan`` (public
constructor) when something is to be scrubbed and the span itself otherwise. Error spans are
rare; for the others the cost is a status and an events check. :class:`ScrubbingSpanExporter`
puts this in front of any ``SpanExporter``:

    >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    >>> exporter = ScrubbingSpanExporter(InMemorySpanExporter())
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from otelperf import _names
from otelperf._sdk import readable as _readable
from otelperf._sdk.readable import events_for_len, status_code_of, status_of
from otelperf.redaction import exceptions as _exceptions
from otelperf.redaction.text import mask_message, scrub_error_text, scrub_stacktrace

__all__ = ["ScrubbingSpanExporter", "needs_scrub", "scrub_span", "scrub_spans"]

_EXCEPTION = _names.EXCEPTION_EVENT


def _events_of(span: ReadableSpan) -> Sequence[Event]:
    # ReadableSpan.events copies the list into a tuple on every read; the field itself is read
    # here because this runs for every exported span. Any other span type takes the property.
    try:
        events: Sequence[Event] = _readable.events_field(span)
    except AttributeError:
        events = span.events
    return events


def needs_scrub(span: ReadableSpan) -> bool:
    """Whether ``span`` has an ERROR status with a description or an ``exception`` event."""
    status = span.status
    if status.status_code is StatusCode.ERROR and status.description:
        return True
    events = _events_of(span)
    if not events:
        return False
    return any(event.name == _EXCEPTION for event in events)


# "(psycopg.errors.UniqueViolation) ..." / "(sqlite3.IntegrityError) ...": SQLAlchemy names the
# driver's class first; a description without an exception event is recognised by it.
_DRIVER_CLASS_RE = re.compile(r"\(([A-Za-z_][\w]*)\.[\w.]+\)")


def _mode_for(type_name: str | None, text: str = "") -> str:
    """How much of a message to keep: by the exception's family, else the setting."""
    family = _exceptions.family_of_type_name(type_name) if type_name else "app"
    if family == "app" and text:
        found = _DRIVER_CLASS_RE.search(text[:200])
        if found is not None:
            family = _exceptions.family_of_type_name(found.group(1))
    if family in ("sql", "redis"):
        return "redact"  # their text quotes rows and arguments: literals masked, as at record time
    if family == "http":
        return "keep"
    return _exceptions.exception_messages_mode()


def _message(text: str, type_name: str | None) -> str:
    mode = _mode_for(type_name, text)
    scrubbed = scrub_error_text(text)
    if mode == "keep":
        return scrubbed
    if mode == "redact":
        return mask_message(scrubbed)
    return type_name or ""


def _scrub_event(event: Event) -> Event:
    attributes: Mapping[str, Any] = event.attributes or {}
    type_name = attributes.get(_names.EXCEPTION_TYPE)
    type_name = type_name if isinstance(type_name, str) else None
    changed: dict[str, Any] = dict(attributes)
    message = attributes.get(_names.EXCEPTION_MESSAGE)
    if isinstance(message, str):
        changed[_names.EXCEPTION_MESSAGE] = _message(message, type_name)
    stacktrace = attributes.get(_names.EXCEPTION_STACKTRACE)
    if isinstance(stacktrace, str):
        mode = _mode_for(type_name, message if isinstance(message, str) else "")
        changed[_names.EXCEPTION_STACKTRACE] = scrub_stacktrace(stacktrace, mode)
    return Event(event.name, changed, event.timestamp)


def _description(description: str, type_name: str | None) -> str:
    head, sep, _rest = description.partition(": ")
    if _mode_for(type_name, description) == "drop":
        if sep:
            return head
        # Already cut to the type (otelperf recorded it so): scrubbing again keeps it.
        return description if description == type_name else ""
    return _message(description, type_name)


def scrub_span(span: ReadableSpan) -> ReadableSpan:
    """``span`` itself when it carries no error text, else a copy with that text scrubbed.

    Never raises: when scrubbing fails, the copy keeps only the exceptions' types and no status
    description, rather than the text as it was.
    """
    if not needs_scrub(span):
        return span
    try:
        return _scrubbed(span)
    except Exception:
        return _without_error_text(span)


def scrub_spans(spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
    """``spans`` itself when none carries error text (the common batch), else a scrubbed copy.

    Runs on the export thread for every batch, so a batch without errors costs two plain
    attribute reads and a truth test per span (the public properties cost several times that).
    """
    try:
        for span in spans:
            if status_code_of(status_of(span)) is StatusCode.ERROR:
                break
            if events_for_len(span):
                break
        else:
            return spans
    except AttributeError:  # not the SDK's span classes: the public path for every span
        pass
    return [scrub_span(span) for span in spans]


def _scrubbed(span: ReadableSpan) -> ReadableSpan:
    events = _events_of(span)
    type_name: str | None = None
    new_events: list[Event] = []
    for event in events:
        if event.name != _EXCEPTION:
            new_events.append(event)
            continue
        scrubbed = _scrub_event(event)
        found = (scrubbed.attributes or {}).get(_names.EXCEPTION_TYPE)
        if type_name is None and isinstance(found, str):
            type_name = found
        new_events.append(scrubbed)
    status = span.status
    if status.status_code is StatusCode.ERROR and status.description:
        status = Status(StatusCode.ERROR, _description(status.description, type_name))
    try:
        attributes: Any = _readable.attributes_field(span)  # keeps BoundedAttributes' dropped count
    except AttributeError:
        attributes = span.attributes
    return ReadableSpan(
        span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=tuple(new_events),
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class ScrubbingSpanExporter(SpanExporter):
    """A ``SpanExporter`` that hands ``inner`` every span through :func:`scrub_span`."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export(scrub_spans(spans))

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _without_error_text(span: ReadableSpan) -> ReadableSpan:
    """The last resort when scrubbing failed: exception events reduced to their type, no description."""
    events = []
    for event in _events_of(span):
        if event.name == _EXCEPTION:
            kept = {k: v for k, v in (event.attributes or {}).items() if k == _names.EXCEPTION_TYPE}
            events.append(Event(event.name, kept, event.timestamp))
        else:
            events.append(event)
    status = span.status
    if status.description:
        status = Status(status.status_code)
    return ReadableSpan(
        span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=tuple(events),
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
