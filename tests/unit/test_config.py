from __future__ import annotations

import logging

import pytest

from otelperf.config import KNOWN_INSTRUMENTATIONS, ConfigError, resolve_settings


def test_defaults_are_loopback_and_http() -> None:
    s = resolve_settings(environ={})
    assert s.endpoint == "http://127.0.0.1:4318"
    assert s.protocol == "http/protobuf"
    assert s.full_traces_endpoint() == "http://127.0.0.1:4318/v1/traces"
    assert s.full_metrics_endpoint() == "http://127.0.0.1:4318/v1/metrics"
    assert s.shutdown_timeout == 5.0
    assert s.instrument == KNOWN_INSTRUMENTATIONS
    assert all(source == "default" for source in s.sources.values())


def test_precedence_kwarg_over_otelperf_env_over_otel_env() -> None:
    env = {"OTELPERF_SERVICE_NAME": "from-otelperf", "OTEL_SERVICE_NAME": "from-otel"}
    assert resolve_settings(environ=env, service_name="kw").service_name == "kw"
    assert resolve_settings(environ=env).service_name == "from-otelperf"
    only_std = resolve_settings(environ={"OTEL_SERVICE_NAME": "from-otel"})
    assert only_std.service_name == "from-otel"
    assert only_std.sources["service_name"] == "OTEL_SERVICE_NAME"


def test_standard_variables_keep_their_meaning() -> None:
    env = {
        "OTEL_RESOURCE_ATTRIBUTES": "team=shop,region=eu%2Dwest",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.local:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant=7",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",  # milliseconds, per the spec
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_SDK_DISABLED": "true",
    }
    s = resolve_settings(environ=env)
    assert s.resource_attributes == {"team": "shop", "region": "eu-west"}
    assert s.full_traces_endpoint() == "http://collector.local:4318/v1/traces"
    assert s.headers == {"authorization": "Bearer abc", "x-tenant": "7"}
    assert s.export_timeout == 2.5
    assert (s.sampler, s.sampler_arg) == ("parentbased_traceidratio", 0.25)
    assert s.disabled is True


def test_signal_specific_endpoint_is_used_as_is() -> None:
    s = resolve_settings(environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://a:1234/custom/traces"})
    assert s.full_traces_endpoint() == "http://a:1234/custom/traces"
    assert s.full_metrics_endpoint() == "http://127.0.0.1:4318/v1/metrics"


def test_grpc_default_port() -> None:
    s = resolve_settings(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert s.endpoint == "http://127.0.0.1:4317"
    assert s.full_traces_endpoint() == "http://127.0.0.1:4317"


def test_durations_accept_units() -> None:
    assert resolve_settings(environ={}, shutdown_timeout="250ms").shutdown_timeout == 0.25
    assert resolve_settings(environ={"OTELPERF_EXPORT_TIMEOUT": "2s"}).export_timeout == 2.0


@pytest.mark.parametrize(
    ("env", "setting", "accepted"),
    [
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "'http/protobuf' or 'grpc'",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT", "a URL such as"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://host:99999"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "a URL such as",
        ),
        ({"OTELPERF_SHUTDOWN_TIMEOUT": "-1"}, "OTELPERF_SHUTDOWN_TIMEOUT", "a duration from 0 to 10 min"),
        (
            {"OTEL_EXPORTER_OTLP_TIMEOUT": "-5"},
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "a duration from 100 ms to 5 min",
        ),
        (
            {"OTEL_BSP_MAX_QUEUE_SIZE": "lots"},
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "a whole number, from 1 to 1,000,000",
        ),
        (
            {"OTELPERF_MAX_EXPORT_BATCH_SIZE": "0"},
            "OTELPERF_MAX_EXPORT_BATCH_SIZE",
            "a whole number from 1 to 1,000,000",
        ),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG", "a number from 0 to 1"),
        ({"OTELPERF_INSTRUMENT": "django"}, "OTELPERF_INSTRUMENT", "sqlalchemy"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES", "key=value"),
    ],
)
def test_bad_configuration_raises_in_strict_mode(env: dict[str, str], setting: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_settings(environ=env, strict=True)
    message = str(err.value)
    assert setting in message
    assert accepted in message


def test_bad_configuration_warns_once_and_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift", "OTELPERF_MAX_QUEUE_SIZE": "x"}
    with caplog.at_level(logging.WARNING, logger="otelperf.config"):
        s = resolve_settings(environ=env)
    assert s.protocol == "http/protobuf"
    assert s.max_queue_size == 8192
    records = [r for r in caplog.records if r.name == "otelperf.config"]
    assert len(records) == 1, "all problems are reported in one message"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='thrift'" in records[0].getMessage()
    assert "OTELPERF_MAX_QUEUE_SIZE='x'" in records[0].getMessage()


def test_strict_from_environment() -> None:
    with pytest.raises(ConfigError, match="OTELPERF_PROTOCOL"):
        resolve_settings(environ={"OTELPERF_STRICT": "1", "OTELPERF_PROTOCOL": "udp"})


def test_kwarg_errors_name_the_keyword() -> None:
    with pytest.raises(ConfigError, match=r"export_timeout= \(keyword argument\)"):
        resolve_settings(environ={}, export_timeout=-3, strict=True)


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="servce_name"):
        resolve_settings(environ={}, servce_name="typo")


def test_headers_are_redacted_in_the_printable_view() -> None:
    s = resolve_settings(environ={"OTEL_EXPORTER_OTLP_HEADERS": "authorization=secret-token-123"})
    assert "secret-token-123" not in repr(s.as_dict())
