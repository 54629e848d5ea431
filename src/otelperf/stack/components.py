"""The processes of the local backend, as data: binary, arguments, ports, health URL.

Everything listens on 127.0.0.1 with the port numbers fixed by the repo's configs
(collector-config/otelcol.yaml, jaeger/config.yaml, prometheus/prometheus.yml); this table only
repeats them so ``otelperf stack`` can check them before starting and report them after.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
# collector-config/otelcol.yaml reads the file_storage directory (the Jaeger exporter's queue) from it.
COLLECTOR_STORAGE_ENV = "OTELCOL_STORAGE_DIR"
INSTALL_HINT = "install it with `scripts/install_stack.sh` (or `make setup`)"


class StackError(Exception):
    """A problem a person can fix (port taken, binary missing, ...); the message says how."""


@dataclass(frozen=True)
class Port:
    number: int
    label: str  # what listens there, e.g. "OTLP/HTTP"


@dataclass(frozen=True)
class Component:
    name: str  # short, used for files and the CLI: "collector", "jaeger", ...
    title: str
    env_var: str  # explicit binary override, e.g. OTELPERF_OTELCOL
    binaries: tuple[str, ...]  # names looked up in the cache bin dir, then on PATH (in this order)
    system_paths: tuple[str, ...]  # absolute fallbacks (Debian packages)
    config: tuple[str, ...]  # config file relative to the config dir; first existing one is used
    args: tuple[str, ...]  # {config}, {state}, {data}, {host}
    ports: tuple[Port, ...]
    health_path: str  # GET http://HOST:<health_port><health_path> answers 200 when ready
    health_port: int
    optional: bool = False  # skipped with a note when its config does not exist

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.health_port}{self.health_path}"

    def data_dir(self, state_dir: Path) -> Path:
        return state_dir / "data" / self.name


COLLECTOR = Component(
    name="collector",
    title="OpenTelemetry Collector",
    env_var="OTELPERF_OTELCOL",
    binaries=("otelcol-otelperf", "otelcol-contrib"),
    system_paths=(),
    config=("collector-config/otelcol.yaml",),
    args=("--config", "{config}"),
    ports=(
        Port(4317, "collector OTLP/gRPC"),
        Port(4318, "collector OTLP/HTTP"),
        Port(8888, "collector own metrics"),
        Port(8889, "collector Prometheus exporter"),
        Port(13133, "collector health_check"),
    ),
    health_path="/",
    health_port=13133,
)

JAEGER = Component(
    name="jaeger",
    title="Jaeger",
    env_var="OTELPERF_JAEGER",
    binaries=("jaeger",),
    system_paths=(),
    config=("jaeger/config.yaml",),
    args=("--config", "{config}"),
    ports=(
        Port(14317, "Jaeger OTLP/gRPC"),
        Port(14318, "Jaeger OTLP/HTTP"),
        Port(16686, "Jaeger query HTTP/UI"),
        Port(16685, "Jaeger query gRPC"),
        Port(13134, "Jaeger health"),
        Port(14269, "Jaeger own metrics"),
    ),
    # jaeger/config.yaml: healthcheckv2 (use_v2) on 13134, 200 only once every component is OK.
    health_path="/status",
    health_port=13134,
)

PROMETHEUS = Component(
    name="prometheus",
    title="Prometheus",
    env_var="OTELPERF_PROMETHEUS",
    binaries=("prometheus",),
    system_paths=("/usr/bin/prometheus",),
    config=("prometheus/prometheus.yml",),
    args=(
        "--config.file={config}",
        "--web.listen-address={host}:9090",
        "--storage.tsdb.path={data}",
        "--enable-feature=exemplar-storage",
        "--web.enable-lifecycle",  # POST /-/reload after editing rules
    ),
    ports=(Port(9090, "Prometheus"),),
    health_path="/-/ready",
    health_port=9090,
)

ALERTMANAGER = Component(
    name="alertmanager",
    title="Alertmanager",
    env_var="OTELPERF_ALERTMANAGER",
    binaries=("prometheus-alertmanager", "alertmanager"),
    system_paths=("/usr/bin/prometheus-alertmanager",),
    config=("alertmanager/alertmanager.yml", "prometheus/alertmanager.yml"),
    args=(
        "--config.file={config}",
        "--web.listen-address={host}:9093",
        "--storage.path={data}",
        # Empty disables clustering; the default gossips on 0.0.0.0:9094.
        "--cluster.listen-address=",
    ),
    ports=(Port(9093, "Alertmanager"),),
    health_path="/-/ready",
    health_port=9093,
    optional=True,
)

# Start order: Jaeger first (the collector exports to it), Prometheus (Jaeger's SPM reads it),
# then the collector, which apps talk to. Stopped in reverse.
COMPONENTS: tuple[Component, ...] = (JAEGER, PROMETHEUS, COLLECTOR, ALERTMANAGER)
CORE: tuple[Component, ...] = (JAEGER, PROMETHEUS, COLLECTOR)
BY_NAME: dict[str, Component] = {c.name: c for c in COMPONENTS}


def cache_dir(environ: Mapping[str, str]) -> Path:
    """Root of otelperf's cache; scripts/install_stack.sh reads the same variable."""
    value = environ.get("OTELPERF_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "otelperf"


def find_binary(component: Component, environ: Mapping[str, str]) -> Path:
    """Env override, then the install script's cache, then PATH, then the system path.

    Raises StackError naming every place looked at and the fix.
    """
    override = environ.get(component.env_var)
    if override:
        path = Path(override).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise StackError(
            f"{component.env_var}={override} is not an executable file: fix the variable or unset it"
        )
    bin_dir = cache_dir(environ) / "bin"
    for name in component.binaries:
        candidate = bin_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    search_path = environ.get("PATH", os.defpath)
    for name in component.binaries:
        found = shutil.which(name, path=search_path)
        if found:
            return Path(found)
    for system in component.system_paths:
        candidate = Path(system)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    looked = [f"${component.env_var} (unset)"]
    looked += [str(bin_dir / name) for name in component.binaries]
    looked.append("PATH (" + ", ".join(component.binaries) + ")")
    looked += list(component.system_paths)
    raise StackError(f"{component.title} binary not found (looked at: {'; '.join(looked)}): {INSTALL_HINT}")


def find_config(component: Component, config_dir: Path) -> Path | None:
    for relative in component.config:
        path = config_dir / relative
        if path.is_file():
            return path
    return None


def build_command(component: Component, binary: Path, config: Path, state_dir: Path) -> list[str]:
    values = {
        "config": str(config),
        "state": str(state_dir),
        "data": str(component.data_dir(state_dir)),
        "host": HOST,
    }
    return [str(binary), *(arg.format(**values) for arg in component.args)]


def child_environ(
    component: Component, environ: Mapping[str, str], state_dir: Path, jaeger_storage: str
) -> dict[str, str]:
    """The process's environment: the caller's, with every address the configs read pinned to
    loopback (a stray OTELCOL_LISTEN_HOST=0.0.0.0 from a compose shell must not expose the stack),
    and the collector's persistent sending queue in the state directory (kept across `down`/`up`
    and restarts, so spans not yet in Jaeger are sent by the next collector; `down --purge` drops it)."""
    env = dict(environ)
    env.update(
        {
            "OTELCOL_LISTEN_HOST": HOST,
            "JAEGER_LISTEN_HOST": HOST,
            "JAEGER_OTLP_ENDPOINT": f"{HOST}:14317",
            "PROMETHEUS_URL": f"http://{HOST}:9090",
        }
    )
    if component is COLLECTOR:
        env[COLLECTOR_STORAGE_ENV] = str(component.data_dir(state_dir))
    if component is JAEGER and jaeger_storage == "badger":
        env["JAEGER_BADGER_DIR"] = str(component.data_dir(state_dir))
    return env


def jaeger_config_name(jaeger_storage: str) -> str:
    if jaeger_storage == "memory":
        return "jaeger/config.yaml"
    if jaeger_storage == "badger":
        return "jaeger/config-badger.yaml"
    raise StackError(f"unknown Jaeger storage {jaeger_storage!r}: use 'memory' or 'badger'")
