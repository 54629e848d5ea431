"""Reading the collector's span counters from its Prometheus text."""

from __future__ import annotations

from otelperf.backends.exposition import sample_name_and_value, sum_family
from otelperf.stack.metrics import SpanFlow, span_flow

COLLECTOR_METRICS = """\
# HELP otelcol_receiver_accepted_spans_total Number of spans successfully pushed into the pipeline.
# TYPE otelcol_receiver_accepted_spans_total counter
otelcol_receiver_accepted_spans_total{otel_scope_name="go.opentelemetry.io/collector/receiver/receiverhelper",receiver="otlp",service_instance_id="a1",transport="http"} 7
otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 3
# TYPE otelcol_receiver_refused_spans_total counter
otelcol_receiver_refused_spans_total{receiver="otlp",transport="http"} 1
otelcol_exporter_sent_spans_total{exporter="otlp_grpc/jaeger"} 9 1732700000000
otelcol_exporter_sent_spans_total_other{exporter="x"} 1000
otelcol_exporter_send_failed_spans{exporter="otlp_grpc/jaeger"} 1
otelcol_process_uptime_seconds_total 12.5
target_info{service_name="otelcol-otelperf",label="with } brace and \\" quote"} 1
"""  # noqa: E501 (verbatim kernel/exporter output)


def test_samples_with_labels_timestamps_exemplars_and_escapes() -> None:
    assert sample_name_and_value('a_total{x="1",y="2"} 3') == ("a_total", 3.0)
    assert sample_name_and_value("a_total 3 1732700000000") == ("a_total", 3.0)
    assert sample_name_and_value('b_bucket{le="0.5"} 4 # {trace_id="abc"} 0.4 1.7e9') == ("b_bucket", 4.0)
    assert sample_name_and_value('t{l="a } b \\" c"} 1') == ("t", 1.0)
    assert sample_name_and_value("c +Inf") == ("c", float("inf"))
    assert sample_name_and_value("# HELP a_total x") is None
    assert sample_name_and_value("") is None
    assert sample_name_and_value("lonely_name") is None
    assert sample_name_and_value('broken{x="1" 3') is None


def test_families_are_summed_over_labels_with_or_without_total_suffix() -> None:
    assert sum_family(COLLECTOR_METRICS, "otelcol_receiver_accepted_spans") == 10
    assert sum_family(COLLECTOR_METRICS, "otelcol_exporter_sent_spans") == 9  # not *_total_other
    assert sum_family(COLLECTOR_METRICS, "otelcol_exporter_send_failed_spans") == 1
    assert sum_family(COLLECTOR_METRICS, "otelcol_receiver_accepted_metric_points") is None


def test_span_flow_from_collector_metrics() -> None:
    flow = span_flow(COLLECTOR_METRICS)
    assert flow == SpanFlow(accepted=10, refused=1, sent=9, send_failed=1)
    assert flow.flowing
    assert flow.describe() == (
        "flowing, with losses: 10 spans accepted, 1 refused, 9 sent to Jaeger, 1 failed"
    )
    assert flow.to_dict() == {
        "accepted": 10,
        "refused": 1,
        "sent": 9,
        "send_failed": 1,
        "enqueue_failed": 0,
        "queue_size": None,
        "queue_capacity": None,
        "flowing": True,
    }


# What collector-config/otelcol.yaml's Jaeger exporter reports (0.145, sizer: bytes) while Jaeger is
# down: the queue holds spans, and once full it refuses new ones.
QUEUE_METRICS = """\
otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 5000
otelcol_exporter_sent_spans_total{exporter="otlp_grpc/jaeger"} 1000
otelcol_exporter_send_failed_spans_total{exporter="otlp_grpc/jaeger"} 0
otelcol_exporter_enqueue_failed_spans_total{exporter="otlp_grpc/jaeger"} 250
otelcol_exporter_queue_capacity{data_type="traces",exporter="otlp_grpc/jaeger"} 2.68435456e+08
otelcol_exporter_queue_size{data_type="traces",exporter="otlp_grpc/jaeger"} 1.34217728e+08
"""


def test_the_sending_queue_and_what_a_full_queue_refused_are_shown() -> None:
    flow = span_flow(QUEUE_METRICS)
    assert (flow.enqueue_failed, flow.queue_size, flow.queue_capacity) == (250, 134217728, 268435456)
    assert flow.describe() == (
        "flowing, with losses: 5000 spans accepted, 0 refused, 1000 sent to Jaeger, 0 failed, "
        "250 refused by a full queue; queue 134217728 of 268435456 (50.0% full)"
    )


def test_an_empty_queue_is_shown_and_a_collector_without_one_shows_none() -> None:
    empty = QUEUE_METRICS.replace("1.34217728e+08", "0").replace("} 250", "} 0")
    assert span_flow(empty).describe().endswith("0 failed; queue 0 of 268435456 (0.0% full)")
    assert span_flow(empty).describe().startswith("flowing: ")
    assert "queue" not in span_flow(COLLECTOR_METRICS).describe()


def test_a_fresh_collector_reports_no_spans_yet() -> None:
    flow = span_flow("# no span counters before the first span\notelcol_process_uptime_seconds_total 1\n")
    assert flow == SpanFlow(0, 0, 0, 0)
    assert not flow.flowing
    assert flow.describe().startswith("no spans received yet")
    assert SpanFlow(5, 0, 5, 0).describe().startswith("flowing: 5 spans accepted")
