"""The /metrics text format: samples by family and label (the collector's span counters)."""

from __future__ import annotations

from tests.unit.backends.fake_backend import fake_backend

from otelperf.backends.exposition import labels_of, samples, scrape, sum_family

PAGE = """\
# TYPE otelcol_exporter_sent_spans_total counter
otelcol_exporter_sent_spans_total{exporter="otlp_grpc/jaeger",service_instance_id="a"} 9
otelcol_exporter_sent_spans_total{exporter="debug"} 4 1732700000000
otelcol_exporter_sent_spans{exporter="jaeger_storage_exporter"} 2
target_info{label="with } brace and \\" quote"} 1
"""


def test_families_summed_over_the_labels_asked_for() -> None:
    assert sum_family(PAGE, "otelcol_exporter_sent_spans") == 15
    assert sum_family(PAGE, "otelcol_exporter_sent_spans", {"exporter": "otlp_grpc/jaeger"}) == 9
    assert sum_family(PAGE, "otelcol_exporter_sent_spans", {"exporter": "nope"}) is None


def test_labels_with_escapes() -> None:
    assert labels_of('a="1", b="x \\" } y",c="\\\\"') == {"a": "1", "b": 'x " } y', "c": "\\"}
    assert list(samples(PAGE))[-1] == ("target_info", {"label": 'with } brace and " quote'}, 1.0)


def test_scrape_reads_the_page() -> None:
    with fake_backend({"/metrics": (200, PAGE)}) as backend:
        assert scrape(backend.url + "/metrics") == PAGE
