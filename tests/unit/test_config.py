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
        (
            {"OTELPERF_SHUTDOWN_TIMEOUT": "-1"},
            "OTELPERF_SHUTDOWN_TIMEOUT",
            "non-negative duration such as 5, '5s' or '250ms', from 0 to 10 min",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TIMEOUT": "-5"},
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "non-negative number of milliseconds, from 100 ms to 5 min",
        ),
        (
            {"OTEL_BSP_MAX_QUEUE_SIZE": "lots"},
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "positive whole number, from 1 to 1,000,000",
        ),
        (
            {"OTELPERF_MAX_EXPORT_BATCH_SIZE": "0"},
            "OTELPERF_MAX_EXPORT_BATCH_SIZE",
            "positive whole number, from 1 to 1,000,000",
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


# --- bounds (issue 12): zero, negative, huge, NaN/inf fall back with one warning ---


@pytest.mark.parametrize(
    ("env", "setting", "accepted"),
    [
        ({"OTEL_BSP_SCHEDULE_DELAY": "0"}, "schedule_delay", "from 1 ms to 1 h"),
        ({"OTELPERF_SCHEDULE_DELAY": "0s"}, "schedule_delay", "from 1 ms to 1 h"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "0"}, "metric_export_interval", "from 100 ms to 24 h"),
        ({"OTELPERF_MAX_QUEUE_SIZE": "99999999999999999999"}, "max_queue_size", "from 1 to 1,000,000"),
        ({"OTELPERF_SHUTDOWN_TIMEOUT": "1e12"}, "shutdown_timeout", "from 0 to 10 min"),
        ({"OTELPERF_EXPORT_TIMEOUT": "0"}, "export_timeout", "from 100 ms to 5 min"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "inf"}, "export_timeout", "from 100 ms to 5 min"),
        ({"OTELPERF_SLOW_QUERY_MS": "nan"}, "slow_query_ms", "more than 0 and at most 1 h"),
        ({"OTELPERF_SLOW_QUERY_MS": "0"}, "slow_query_ms", "more than 0 and at most 1 h"),
        ({"OTELPERF_N_PLUS_ONE_MIN_COUNT": "1"}, "n_plus_one_min_count", "from 2 to 10,000"),
        ({"OTELPERF_N_PLUS_ONE_MIN_MS": "-5"}, "n_plus_one_min_ms", "from 0 to 1 h"),
        ({"OTELPERF_BUDGETS": "*=0"}, "budgets", "each value more than 0 and at most 1 h"),
        ({"OTELPERF_BUDGETS": '{"GET /x": "inf"}'}, "budgets", "each value more than 0 and at most 1 h"),
        ({"OTELPERF_EXPORT_SHARE": "-0.5"}, "export_share", "from 0 to 1"),
        ({"OTEL_TRACES_SAMPLER_ARG": "nan"}, "sampler_arg", "from 0 to 1"),
    ],
)
def test_out_of_range_values_fall_back_with_a_warning_naming_the_range(
    env: dict[str, str], setting: str, accepted: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="otelperf.config"):
        s = resolve_settings(environ=env)
    assert getattr(s, setting) == getattr(resolve_settings(environ={}), setting)
    [record] = [r for r in caplog.records if r.name == "otelperf.config"]
    [(variable, value)] = env.items()
    assert f"invalid {variable}={value!r}: expected" in record.getMessage()
    assert accepted in record.getMessage()
    with pytest.raises(ConfigError, match=variable):
        resolve_settings(environ=env, strict=True)


def test_kwargs_are_range_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"schedule_delay= \(keyword argument\)=nan"):
        resolve_settings(environ={}, schedule_delay=float("nan"), strict=True)
    assert resolve_settings(environ={}, max_queue_size=10**20).max_queue_size == 8192
    assert resolve_settings(environ={}, max_queue_size=True).max_queue_size == 8192
    assert resolve_settings(environ={}, schedule_delay="250ms").schedule_delay == 0.25


def test_values_at_the_bounds_are_accepted() -> None:
    s = resolve_settings(
        environ={
            "OTEL_BSP_SCHEDULE_DELAY": "1",  # milliseconds
            "OTELPERF_METRIC_EXPORT_INTERVAL": "86400",
            "OTELPERF_SHUTDOWN_TIMEOUT": "0",
            "OTELPERF_MAX_QUEUE_SIZE": "1000000",
            "OTELPERF_N_PLUS_ONE_MIN_COUNT": "2",
        },
        strict=True,
    )
    assert (s.schedule_delay, s.metric_export_interval, s.shutdown_timeout) == (0.001, 86400.0, 0.0)
    assert (s.max_queue_size, s.n_plus_one_min_count) == (1_000_000, 2)


def test_a_batch_larger_than_the_queue_is_limited_to_it(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otelperf.config"):
        quiet = resolve_settings(environ={"OTELPERF_MAX_QUEUE_SIZE": "100"})
    assert (quiet.max_queue_size, quiet.max_export_batch_size) == (100, 100)
    assert not caplog.records, "a default batch size just follows a smaller queue"
    with caplog.at_level(logging.WARNING, logger="otelperf.config"):
        loud = resolve_settings(
            environ={"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500"}
        )
    assert loud.max_export_batch_size == 100
    assert "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=500 is larger than max_queue_size=100" in caplog.text


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_EXPORTER_OTLP_HEADERS": "bad name=1"}, "OTEL_EXPORTER_OTLP_HEADERS"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "x-key=caf%C3%A9%E2%82%AC"}, "OTEL_EXPORTER_OTLP_HEADERS"),
        ({"OTELPERF_HEADERS": "x-key=a%0Ab"}, "OTELPERF_HEADERS"),
        (
            {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-id,ü"},
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        ),
    ],
)
def test_headers_that_http_cannot_send_are_refused(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        resolve_settings(environ=env, strict=True)


def test_an_unreadable_budgets_file_is_a_warning(tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otelperf.config"):
        s = resolve_settings(environ={"OTELPERF_BUDGETS_FILE": str(tmp_path)})  # a directory
    assert s.budgets == {}
    assert "invalid budgets file" in caplog.text


def test_every_numeric_setting_has_bounds() -> None:
    """A new number in _SPEC needs its range in BOUNDS (and so in docs/configuration.md)."""
    from otelperf import config

    numeric = {
        config._parse_positive_int,
        config._parse_seconds,
        config._parse_millis,
        config._parse_millis_env,
        config._parse_ratio,
        config._parse_budgets,
    }
    for name, _, _, parse, std_parse in config._SPEC:
        if parse in numeric or std_parse in numeric:
            assert name in config.BOUNDS, f"{name} is a number without BOUNDS"
    assert set(config.BOUNDS) <= set(config.SETTING_NAMES)
