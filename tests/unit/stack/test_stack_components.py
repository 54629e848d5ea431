"""The component table: binary lookup order, command lines, loopback-only environment."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from otelperf.stack.components import (
    ALERTMANAGER,
    COLLECTOR,
    COMPONENTS,
    CORE,
    JAEGER,
    PROMETHEUS,
    StackError,
    build_command,
    child_environ,
    find_binary,
    find_config,
    jaeger_config_name,
)

REPO = Path(__file__).resolve().parents[3]


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"cache": tmp_path / "cache", "path": tmp_path / "path", "other": tmp_path / "other"}


def _env(dirs: dict[str, Path], **extra: str) -> dict[str, str]:
    return {"OTELPERF_CACHE": str(dirs["cache"]), "PATH": str(dirs["path"]), **extra}


def test_env_override_wins_over_cache_and_path(dirs: dict[str, Path]) -> None:
    _executable(dirs["cache"] / "bin" / "otelcol-otelperf")
    _executable(dirs["path"] / "otelcol-otelperf")
    mine = _executable(dirs["other"] / "my-otelcol")
    assert find_binary(COLLECTOR, _env(dirs, OTELPERF_OTELCOL=str(mine))) == mine


def test_cache_wins_over_path(dirs: dict[str, Path]) -> None:
    cached = _executable(dirs["cache"] / "bin" / "jaeger")
    _executable(dirs["path"] / "jaeger")
    assert find_binary(JAEGER, _env(dirs)) == cached


def test_path_is_searched_and_the_official_contrib_build_is_accepted(dirs: dict[str, Path]) -> None:
    contrib = _executable(dirs["path"] / "otelcol-contrib")
    assert find_binary(COLLECTOR, _env(dirs)) == contrib


def test_our_build_is_preferred_over_contrib_on_path(dirs: dict[str, Path]) -> None:
    _executable(dirs["path"] / "otelcol-contrib")
    ours = _executable(dirs["path"] / "otelcol-otelperf")
    assert find_binary(COLLECTOR, _env(dirs)) == ours


def test_a_wrong_override_is_an_error_not_a_silent_fallback(dirs: dict[str, Path]) -> None:
    _executable(dirs["cache"] / "bin" / "jaeger")
    with pytest.raises(StackError, match=r"OTELPERF_JAEGER=/nowhere/jaeger is not an executable file"):
        find_binary(JAEGER, _env(dirs, OTELPERF_JAEGER="/nowhere/jaeger"))


def test_a_non_executable_file_is_not_taken(dirs: dict[str, Path]) -> None:
    (dirs["cache"] / "bin").mkdir(parents=True)
    (dirs["cache"] / "bin" / "jaeger").write_text("not executable")
    with pytest.raises(StackError, match="Jaeger binary not found"):
        find_binary(JAEGER, _env(dirs))


def test_missing_binary_message_lists_places_and_the_fix(dirs: dict[str, Path]) -> None:
    with pytest.raises(StackError) as caught:
        find_binary(COLLECTOR, _env(dirs))
    message = str(caught.value)
    assert message.startswith(
        "OpenTelemetry Collector binary not found (looked at: $OTELPERF_OTELCOL (unset); "
    )
    assert str(dirs["cache"] / "bin" / "otelcol-otelperf") in message
    assert "PATH (otelcol-otelperf, otelcol-contrib)" in message
    assert message.endswith("install it with `scripts/install_stack.sh` (or `make setup`)")


def test_commands_use_the_repo_configs_and_loopback(tmp_path: Path) -> None:
    state = tmp_path / "state"
    binary = Path("/opt/bin/x")
    assert build_command(COLLECTOR, binary, REPO / "collector-config/otelcol.yaml", state) == [
        "/opt/bin/x",
        "--config",
        str(REPO / "collector-config/otelcol.yaml"),
    ]
    assert build_command(JAEGER, binary, REPO / "jaeger/config.yaml", state) == [
        "/opt/bin/x",
        "--config",
        str(REPO / "jaeger/config.yaml"),
    ]
    assert build_command(PROMETHEUS, binary, REPO / "prometheus/prometheus.yml", state) == [
        "/opt/bin/x",
        f"--config.file={REPO / 'prometheus/prometheus.yml'}",
        "--web.listen-address=127.0.0.1:9090",
        f"--storage.tsdb.path={state / 'data' / 'prometheus'}",
        "--enable-feature=exemplar-storage",
        "--web.enable-lifecycle",
    ]
    assert build_command(ALERTMANAGER, binary, Path("/c/am.yml"), state) == [
        "/opt/bin/x",
        "--config.file=/c/am.yml",
        "--web.listen-address=127.0.0.1:9093",
        f"--storage.path={state / 'data' / 'alertmanager'}",
        "--cluster.listen-address=",
    ]


def test_every_config_the_table_names_exists_in_the_repo() -> None:
    for component in CORE:
        assert find_config(component, REPO) == REPO / component.config[0]
    assert (REPO / jaeger_config_name("badger")).is_file()


def test_ports_and_health_urls_match_the_design() -> None:
    ports = {c.name: [p.number for p in c.ports] for c in COMPONENTS}
    assert ports == {
        "jaeger": [14317, 14318, 16686, 16685, 13134, 14269],
        "prometheus": [9090],
        "collector": [4317, 4318, 8888, 8889, 13133],
        "alertmanager": [9093],
    }
    all_ports = [p for numbers in ports.values() for p in numbers]
    assert len(all_ports) == len(set(all_ports))
    assert [c.health_url for c in COMPONENTS] == [
        "http://127.0.0.1:13134/status",
        "http://127.0.0.1:9090/-/ready",
        "http://127.0.0.1:13133/",
        "http://127.0.0.1:9093/-/ready",
    ]


def test_the_health_ports_are_the_ones_in_the_configs() -> None:
    assert "${env:JAEGER_LISTEN_HOST:-127.0.0.1}:13134" in (REPO / "jaeger/config.yaml").read_text()
    assert (
        "${env:OTELCOL_LISTEN_HOST:-127.0.0.1}:13133" in (REPO / "collector-config/otelcol.yaml").read_text()
    )


def test_child_environment_pins_every_address_to_loopback(tmp_path: Path) -> None:
    env = child_environ(
        COLLECTOR,
        {"OTELCOL_LISTEN_HOST": "0.0.0.0", "OTELPERF_PG_ENDPOINT": "db:5432", "HOME": "/h"},
        tmp_path,
        "memory",
    )
    assert env["OTELCOL_LISTEN_HOST"] == "127.0.0.1"
    assert env["JAEGER_LISTEN_HOST"] == "127.0.0.1"
    assert env["JAEGER_OTLP_ENDPOINT"] == "127.0.0.1:14317"
    assert env["PROMETHEUS_URL"] == "http://127.0.0.1:9090"
    assert env["OTELPERF_PG_ENDPOINT"] == "db:5432"  # what to scrape stays the user's choice
    assert env["HOME"] == "/h"
    assert "JAEGER_BADGER_DIR" not in env


def test_the_collector_queue_lives_in_the_state_dir_whatever_the_environment_says(tmp_path: Path) -> None:
    env = child_environ(COLLECTOR, {"OTELCOL_STORAGE_DIR": "/elsewhere"}, tmp_path, "memory")
    assert env["OTELCOL_STORAGE_DIR"] == str(tmp_path / "data" / "collector")
    assert "OTELCOL_STORAGE_DIR" not in child_environ(JAEGER, {}, tmp_path, "memory")
    config = (REPO / "collector-config/otelcol.yaml").read_text()
    assert "directory: ${env:OTELCOL_STORAGE_DIR:-/var/tmp/otelperf-otelcol-queue}" in config


def test_badger_storage_keeps_jaeger_data_in_the_state_dir(tmp_path: Path) -> None:
    env = child_environ(JAEGER, {}, tmp_path, "badger")
    assert env["JAEGER_BADGER_DIR"] == str(tmp_path / "data" / "jaeger")
    assert jaeger_config_name("badger") == "jaeger/config-badger.yaml"
    assert jaeger_config_name("memory") == "jaeger/config.yaml"
    with pytest.raises(StackError, match="unknown Jaeger storage 'cassandra'"):
        jaeger_config_name("cassandra")
