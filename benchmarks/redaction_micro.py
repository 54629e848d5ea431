"""What the redaction layer costs, side by side in one run.

1. Export side: ``ScrubbingSpanExporter.export`` of a batch vs handing the same batch to the inner
   exporter directly, for batches without errors (the case that must stay ~free: one status and
   one events check per span) and for batches where every span carries an SDK-recorded exception
   (a SQLAlchemy IntegrityError with its statement, parameters and traceback).
2. SQL: ``sanitize`` on a cache miss, for a statement without double quotes (one regex pass) and
   the same statement with SQLAlchemy's quoted names (the stateful scan that tells names from
   values).
3. Record time: ``sanitize_exception`` (what otelperf records) vs the SDK's own text
   (``str(exc)`` + ``traceback.format_exception``), per exception.

    .venv/bin/python benchmarks/redaction_micro.py [--batch 512] [--rounds 200]
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import create_engine, text

from otelperf.redaction import sql as _sql
from otelperf.redaction.exceptions import sanitize_exception
from otelperf.redaction.span_filter import ScrubbingSpanExporter

DB_ATTRIBUTES = {
    "db.system.name": "postgresql",
    "db.query.text": "SELECT books.title FROM books WHERE books.author_id = $1",
    "otelperf.component": "db",
}


class _Null(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _integrity_error() -> Exception:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE u (email TEXT UNIQUE, pw TEXT)"))
        conn.execute(text("INSERT INTO u VALUES (:e, :p)"), {"e": "a@x.io", "p": "hunter2"})
        try:
            conn.execute(text("INSERT INTO u VALUES (:e, :p)"), {"e": "a@x.io", "p": "hunter2"})
        except Exception as exc:
            return exc
    raise AssertionError("did not raise")


def _spans(count: int, error: Exception | None) -> list[ReadableSpan]:
    provider = TracerProvider()
    tracer = provider.get_tracer("bench")
    spans: list[ReadableSpan] = []
    for _ in range(count):
        span = tracer.start_span("SELECT books", kind=SpanKind.CLIENT, attributes=DB_ATTRIBUTES)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
        spans.append(span)  # type: ignore[arg-type]
    return spans


def _best(run: Callable[[], object], rounds: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            run()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    inner = _Null()
    scrubbing = ScrubbingSpanExporter(inner)
    error = _integrity_error()
    ok = _spans(args.batch, None)
    bad = _spans(max(args.batch // 16, 1), error)

    # otelperf's own spans are plain ReadableSpans with their events in a tuple.
    leaf = [ReadableSpan(s.name, s.context, attributes=s.attributes, events=()) for s in ok]
    for label, batch in (("SDK spans", ok), ("otelperf spans", leaf)):
        direct = _best(lambda batch=batch: inner.export(batch), args.rounds)  # type: ignore[misc]
        wrapped = _best(lambda batch=batch: scrubbing.export(batch), args.rounds)  # type: ignore[misc]
        per_ok = (wrapped - direct) / args.batch
        print(f"non-error {label:>14}: {per_ok * 1e9:5.0f} ns/span added (batch of {args.batch})")

    error_rounds = max(args.rounds // 20, 3)
    wrapped_bad = _best(lambda: scrubbing.export(bad), error_rounds)
    per_bad = wrapped_bad / len(bad)
    print(
        f"error spans:     {per_bad * 1e6:7.1f} us/span to scrub (SQLAlchemy IntegrityError event + status)"
    )

    plain = "SELECT users.id, users.name FROM users WHERE users.id = %(id_1)s AND users.status IN (%(s_1)s)"
    quoted = plain.replace("users", '"user"')
    for label, statement in (("no double quotes", plain), ("quoted names", quoted)):
        cost = _best(lambda statement=statement: _sql._sanitize(statement, False), args.rounds * 5)  # type: ignore[misc]
        print(f"sanitize, {label:>16}: {cost * 1e6:5.1f} us on a cache miss (a hit is a dict lookup)")

    sdk = _best(lambda: (str(error), "".join(traceback.format_exception(error))), args.rounds)
    ours = _best(lambda: sanitize_exception(error), args.rounds)
    print(
        f"record time:     sanitize_exception {ours * 1e6:6.1f} us vs the SDK's raw text {sdk * 1e6:6.1f} us"
    )
    print(f"ratio:                    sanitize_exception / raw text {ours / sdk:.2f}x")


if __name__ == "__main__":
    main()
