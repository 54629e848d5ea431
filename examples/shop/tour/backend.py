"""Step 1, and the wait after the load: the local stack up, and every span of the run stored."""

from __future__ import annotations

from examples.shop.tour.common import (
    APP_LOG,
    COLLECTOR_METRICS,
    JAEGER_METRICS,
    OTLP_HTTP,
    StepFailed,
    alertmanager,
    jaeger,
    prometheus,
    say,
    wait_until,
)
from otelperf.backends.exposition import scrape, sum_family
from otelperf.stack import Stack, StackError


def start_backend() -> tuple[Stack, bool]:
    """Returns the stack and whether it was fully running before the demo."""
    stack = Stack(with_alertmanager=True, progress=lambda m: say(f"backend: {m}"))
    try:
        result = stack.up(timeout=90)
    except StackError as exc:
        raise StepFailed("backend (otelperf stack up)", str(exc), stack.state_dir / "logs") from exc
    if result.started:
        say(f"backend: started {', '.join(result.started)} in {result.seconds:.1f} s")
        if result.already_running:
            say(f"backend: already running: {', '.join(result.already_running)}")
    else:
        say(f"backend: already running ({', '.join(result.already_running)}); nothing started")
    say(
        f"backend: Jaeger {jaeger.url}, Prometheus {prometheus.url}, Alertmanager {alertmanager.url}, "
        f"OTLP/HTTP {OTLP_HTTP}"
    )
    say(f"backend: logs in {stack.state_dir / 'logs'} (`otelperf stack logs`)")
    return stack, not result.started


def span_counters() -> tuple[float, float, float]:
    """(spans the collector accepted, sent on to Jaeger, Jaeger stored), from their own metrics.
    Raises OSError (the backends' BackendError) when a page cannot be read."""
    collector, jaeger_page = scrape(COLLECTOR_METRICS), scrape(JAEGER_METRICS)
    return (
        sum_family(collector, "otelcol_receiver_accepted_spans") or 0.0,
        sum_family(collector, "otelcol_exporter_sent_spans", {"exporter": "otlp_grpc/jaeger"}) or 0.0,
        sum_family(jaeger_page, "otelcol_exporter_sent_spans", {"exporter": "jaeger_storage_exporter"})
        or 0.0,
    )


def wait_spans_stored(before: tuple[float, float, float], stack: Stack) -> float:
    """Until the run's spans (counter deltas since ``before``) went collector -> Jaeger -> storage,
    so every trace read next is complete (a trace's spans can travel in different batches).
    Returns how many spans the run sent."""
    last: tuple[float, ...] = (0.0, 0.0, 0.0)

    def stored() -> bool:
        nonlocal last
        try:
            last = tuple(now - then for now, then in zip(span_counters(), before, strict=True))
        except OSError:
            return False
        return last[0] > 0 and last[0] == last[1] == last[2]

    collector_log = stack.log_path("collector")
    if wait_until(stored, timeout=30):
        say(f"{last[0]:.0f} spans of this run accepted by the collector and stored in Jaeger")
    elif last[0] == 0:
        raise StepFailed("telemetry", "the collector accepted no span from the app", APP_LOG)
    else:
        say(
            f"WARNING: after 30 s, {last[0]:.0f} spans accepted, {last[1]:.0f} sent to Jaeger, "
            f"{last[2]:.0f} stored (logs: {collector_log}, {stack.log_path('jaeger')}); going on"
        )
    return last[0]
