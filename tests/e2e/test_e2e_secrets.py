"""Issue 12 through the real backend: no canary reaches what the backends hold.

The canary scenario of tests/integration/test_secrets_canary.py (``_canary_scenario``: one unique
canary per way a user's secret reached the telemetry, planted through a FastAPI app on the real
PostgreSQL, SQLite, Redis and loopback HTTP servers) runs under ``otelperf.init()`` exporting to
the real collector. Then everything that left the process is read back as the backends hold it
and searched for every canary:

- the traces in Jaeger: every trace of the run's service, as raw JSON text (the search answer and
  each trace by id);
- the metrics in Prometheus: every series of the run's service (``/api/v1/series``) and every
  value of every label name, and the collector's Prometheus exporter (:8889 ``/metrics``) text;
- the collector's own log (its debug exporter prints logs only; warnings would quote data).

The non-secret parts (error classes, sanitized statements, the redacted URLs' hosts, the findings
and the findings metric's statement label) are asserted present in the same Jaeger and Prometheus
answers, so the test cannot pass by exporting nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.e2e._backend import COLLECTOR_METRICS, JAEGER, PROMETHEUS, poll
from tests.e2e.conftest import StackUrls
from tests.integration._canary_scenario import (
    EXPECTED_STATUSES,
    INIT_OPTIONS,
    canaries,
    check_present,
    run_requests,
    span_record,
    upstream_server,
)

import otelperf
from otelperf.backends import Jaeger, Prometheus, Sample, get_text, parse_spans
from otelperf.stack import Stack

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]
EXPORTER_METRICS = "http://127.0.0.1:8889/metrics"  # the collector's Prometheus exporter
STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}


def records(text: str) -> list[dict[str, Any]]:
    """Jaeger's OTLP JSON spans as ``_canary_scenario.check_present`` reads them, events included."""
    return [
        span_record(
            span.name,
            kind=int(span.kind),
            status=STATUS_CODES[span.status_code],
            description=span.status_message,
            attributes=dict(span.attributes),
            events=[(e.name, dict(e.attributes)) for e in span.events],
        )
        for span in parse_spans(json.loads(text))
    ]


def jaeger_texts(
    service: str, start: float, end: float, *, by_id: bool = True
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Raw JSON text of the service's traces (the search answer, and each trace by id), and their
    spans as records (from the search answer unless ``by_id``)."""
    jaeger = Jaeger(JAEGER)
    search = jaeger.search_text(service, start=start - 1, end=end + 1, limit=1000)
    if not search:  # "No traces found" (yet)
        return {}, []
    texts = {"search": search}
    if not by_id:
        return texts, records(search)
    spans = []
    for trace_id in sorted({s.trace_id for s in parse_spans(json.loads(search))}):
        text = jaeger.trace_text(trace_id)
        texts[f"trace {trace_id}"] = text
        spans.extend(records(text))
    return texts, spans


def prometheus_texts(service: str) -> dict[str, str]:
    """Every series of the service (all their labels), every value of every label name, and the
    collector's exporter page."""
    texts = {}
    for selector in (f'{{service_name="{service}"}}', f'{{job="{service}"}}'):
        texts[f"series {selector}"] = get_text(f"{PROMETHEUS}/api/v1/series", {"match[]": selector})
    for name in Prometheus(PROMETHEUS).labels():
        texts[f"label {name}"] = get_text(f"{PROMETHEUS}/api/v1/label/{name}/values")
    texts["collector :8889/metrics"] = get_text(EXPORTER_METRICS)
    texts["collector :8888/metrics"] = get_text(COLLECTOR_METRICS)
    return texts


def collector_redaction() -> Callable[[str], str]:
    """What the collector's ``redaction`` processor (collector-config/otelcol.yaml) makes of a text:
    each ``blocked_values`` pattern's matches masked as ``****``."""
    config = (REPO / "collector-config" / "otelcol.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(config) if line.strip() == "blocked_values:")
    patterns = []
    for line in config[start + 1 :]:
        item = line.strip()
        if not item.startswith("- "):
            break
        patterns.append(re.compile(json.loads(item[2:])))  # YAML double-quoted: JSON's escapes
    assert patterns, "no blocked_values in the collector's config"

    def mask(text: str) -> str:
        for pattern in patterns:
            text = pattern.sub("****", text)
        return text

    return mask


def log_texts() -> dict[str, str]:
    """The collector's log (and Jaeger's, which logs what it could not store), rotated files too."""
    stack = Stack(with_alertmanager=False)
    texts = {}
    for component in ("collector", "jaeger"):
        path = stack.log_path(component)
        for log in (path, Path(f"{path}.1")):
            if log.exists():
                texts[f"log {log.name}"] = log.read_text(errors="replace")
    return texts


def test_no_canary_reaches_the_backends(stack: StackUrls, postgres_url: str, redis_url: str) -> None:
    del stack
    c = canaries()
    service = f"canary-e2e-{uuid.uuid4().hex[:8]}"
    table = f"canary_{uuid.uuid4().hex[:10]}"
    started = time.time()
    with upstream_server() as upstream:
        try:
            runtime = otelperf.init(
                service_name=service,
                endpoint="http://127.0.0.1:4318",
                schedule_delay="100ms",
                metric_export_interval="1s",
                **INIT_OPTIONS,
            )
            statuses = run_requests(c, postgres_url, redis_url, upstream, table)
            assert statuses == EXPECTED_STATUSES
            assert otelperf.shutdown(timeout=15)
        finally:
            otelperf.shutdown(timeout=5)
    # Not a runtime another test left initialised, under another service name.
    assert runtime.settings.service_name == service, runtime.settings.service_name
    delivery = runtime.delivery
    assert delivery is not None and delivery.spans_dropped == 0, delivery
    exported = delivery.spans_exported  # what the collector accepted: Jaeger must hold as many

    def stored() -> int:
        return len(jaeger_texts(service, started, time.time(), by_id=False)[1])

    poll(f"{exported} spans of {service} in Jaeger", stored, lambda n: n >= exported, timeout=30)

    # The findings metric, labelled with the sanitized statement, scraped by Prometheus: after
    # that, the final metric export of the run is in Prometheus too.
    def findings() -> list[Sample]:
        return Prometheus(PROMETHEUS).query(f'otelperf_findings_total{{service_name="{service}"}}')

    series = poll(
        "the findings metric with the sanitized slow statement in Prometheus",
        findings,
        lambda result: any("SELECT pg_sleep(?), ?" in s.labels.values() for s in result),
        timeout=30,
    )
    texts, spans = jaeger_texts(service, started, time.time())
    texts |= prometheus_texts(service)
    texts |= log_texts()

    leaked = {name: [where for where, text in texts.items() if canary in text] for name, canary in c.items()}
    leaked = {name: where for name, where in leaked.items() if where}
    assert not leaked, f"canaries in what the backends hold: {leaked}"

    # --- what must be there, so that the test cannot pass by exporting nothing -----------------
    print(f"\n{service}: {len(spans)} spans in Jaeger, {len(series)} findings series, {len(texts)} texts")
    check_present(spans, upstream, table, seen_as=collector_redaction())
    # The search sees what it must: a unique non-secret token of the run (the table's name, in the
    # sanitized statements) in the raw traces, the service in the series, a non-empty collector log.
    assert any(table in text for where, text in texts.items() if where.startswith("trace ")), texts.keys()
    assert any(service in text for where, text in texts.items() if where.startswith("series")), texts.keys()
    assert any(where.startswith("log collector") and text for where, text in texts.items()), texts.keys()
