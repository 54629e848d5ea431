"""Start, stop and inspect the local backend: ``Stack(config_dir, state_dir).up() / .down() / .status()``.

The processes run detached (own session, output to log files), so they outlive the command or the
test session that started them; the state directory is the only link back to them. A pid is only
signalled when its command line and start time still match the record (pids get reused).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from otelperf.backends import BackendError
from otelperf.backends._http import get_bytes
from otelperf.backends.exposition import scrape
from otelperf.export.figures import ServiceDelivery, delivery_by_service
from otelperf.stack import components as comp
from otelperf.stack.components import Component, StackError
from otelperf.stack.metrics import SpanFlow, span_flow
from otelperf.stack.ports import Holder, conflict_message, find_holder, port_in_use
from otelperf.stack.results import URLS, ComponentStatus, StackStatus, UpResult
from otelperf.stack.state import (
    ProcessRecord,
    StateDir,
    default_state_dir,
    format_argv,
    is_ours,
    pid_alive,
    start_ticks,
    tail_lines,
)

# Re-exported: callers import them from here (`otelperf.stack` re-exports them again).
__all__ = ["URLS", "ComponentStatus", "Stack", "StackStatus", "UpResult", "probe", "resolve_config_dir"]

COLLECTOR_METRICS_URL = "http://127.0.0.1:8888/metrics"
_CONFIG_MARKER = Path("collector-config") / "otelcol.yaml"
_LOG_TAIL = 30

# Processes started by this Python process: kept so they are reaped (no zombies) when stopped
# from the same process, as a test session does.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def started_by_this_process(pid: int) -> bool:
    """True for a stack process this Python process started (e.g. a test session's e2e stack)."""
    return pid in _CHILDREN


def resolve_config_dir(explicit: str | Path | None, environ: Mapping[str, str]) -> Path:
    """--config-dir / Stack(config_dir), then $OTELPERF_STACK_CONFIG_DIR, then the checkout this
    package runs from (src layout), then the current directory."""
    chosen = explicit or environ.get("OTELPERF_STACK_CONFIG_DIR")
    if chosen:
        path = Path(chosen).expanduser().resolve()
        if not (path / _CONFIG_MARKER).is_file():
            raise StackError(f"{path} has no {_CONFIG_MARKER}: give the otelperf checkout (repo root)")
        return path
    checkout = Path(__file__).resolve().parents[3]
    for candidate in (checkout, Path.cwd()):
        if (candidate / _CONFIG_MARKER).is_file():
            return candidate
    raise StackError(
        "cannot find the stack configs (collector-config/, jaeger/, prometheus/): run from an otelperf "
        "checkout, or pass --config-dir / set OTELPERF_STACK_CONFIG_DIR to its root"
    )


def probe(url: str, timeout: float = 1.0) -> bool:
    try:
        get_bytes(url, timeout=timeout)  # returns on 2xx, raises BackendError on anything else
    except BackendError:
        return False
    return True


def _port_conflicts(components: list[Component]) -> list[str]:
    """One line per process holding our ports (the first port in full, the others listed)."""
    by_holder: dict[object, list[comp.Port]] = {}
    holders: dict[object, Holder | None] = {}
    for component in components:
        for port in component.ports:
            if port_in_use(port.number):
                holder = find_holder(port.number)
                key: object = holder.pid if holder else ("unknown", port.number)
                by_holder.setdefault(key, []).append(port)
                holders[key] = holder
    lines = []
    for key, ports in by_holder.items():
        line = conflict_message(ports[0].number, ports[0].label, holders[key])
        if len(ports) > 1:
            line += " (also ports " + ", ".join(str(p.number) for p in ports[1:]) + ")"
        lines.append(line)
    return lines


def _no_progress(message: str) -> None:
    del message


class Stack:
    """The local collector + Jaeger + Prometheus (+ Alertmanager), run as detached processes.

    >>> stack = Stack()                # configs from this checkout, state in ~/.cache/otelperf/state/stack
    >>> result = stack.up(timeout=60)  # doctest: +SKIP
    >>> stack.status().all_up          # doctest: +SKIP
    True
    >>> if result.started:             # doctest: +SKIP
    ...     stack.down()               # at the end: only if this caller started it

    ``up`` is idempotent (a running, healthy stack is left as it is: ``result.started == []``),
    so a session fixture can call it unconditionally.
    """

    def __init__(
        self,
        config_dir: str | Path | None = None,
        state_dir: str | Path | None = None,
        *,
        with_alertmanager: bool | None = None,
        jaeger_storage: str = "memory",
        environ: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self._config_dir_arg = config_dir
        self.state = StateDir(
            Path(state_dir).expanduser().resolve() if state_dir else default_state_dir(self.environ)
        )
        self.with_alertmanager = with_alertmanager
        self.jaeger_storage = jaeger_storage
        comp.jaeger_config_name(jaeger_storage)  # validate early
        self.progress = progress or _no_progress

    @property
    def state_dir(self) -> Path:
        return self.state.root

    @property
    def config_dir(self) -> Path:
        # Resolved on use: `down`/`status` work without a checkout (e.g. from a wheel).
        return resolve_config_dir(self._config_dir_arg, self.environ)

    def log_path(self, component: str) -> Path:
        return self.state.log_path(component)

    # -- up -----------------------------------------------------------------------------------

    def up(self, timeout: float = 60.0) -> UpResult:
        """Start whatever is not running and wait until every component answers its health check.

        Raises StackError (nothing left running that this call started) when a port is taken, a
        binary is missing, or a component does not become healthy within ``timeout`` seconds.
        """
        began = time.monotonic()
        result = UpResult()
        with self._lock():
            plan, notes = self.plan()
            result.notes += notes
            running = [c for c in plan if self._running(c)]
            to_start = [c for c in plan if c not in running]
            result.already_running = [c.name for c in running]
            launches = self._prepare(to_start)
            started: list[Component] = []
            deadline = time.monotonic() + timeout
            try:
                for component in plan:
                    if component in to_start:
                        binary, config = launches[component.name]
                        self.progress(f"starting {component.title} ({binary})")
                        self._spawn(component, binary, config)
                        started.append(component)
                    self._wait_healthy(component, deadline, timeout)
            except BaseException as exc:  # also Ctrl-C while waiting: leave nothing half-started
                for component in reversed(started):
                    self._stop(component, 10.0)
                if isinstance(exc, StackError) and started:
                    names = ", ".join(c.name for c in reversed(started))
                    raise StackError(f"{exc}\nstopped what this `up` had started: {names}") from exc
                raise
            result.started = [c.name for c in started]
        result.seconds = time.monotonic() - began
        return result

    def plan(self) -> tuple[list[Component], list[str]]:
        """The components `up` runs, in start order, and notes on the optional ones left out."""
        plan = list(comp.CORE)
        if self.with_alertmanager is False:
            return plan, []
        am = comp.ALERTMANAGER
        try:
            comp.find_binary(am, self.environ)
        except StackError:
            if self.with_alertmanager:
                raise
            return plan, []  # optional and not installed: nothing to say
        if comp.find_config(am, self.config_dir) is None:
            wanted = " or ".join(am.config)
            return plan, [f"Alertmanager not started: no config yet ({wanted})"]
        return [*plan, am], []

    def _running(self, component: Component) -> bool:
        record = self.state.read(component.name)
        if record is None:
            return False
        if is_ours(record):
            return True
        self.state.remove(component.name)  # stale: the process is gone (or the pid was reused)
        return False

    def _prepare(self, to_start: list[Component]) -> dict[str, tuple[Path, Path]]:
        """Binaries, configs and free ports for everything to start, checked before starting any."""
        problems: list[str] = []
        launches: dict[str, tuple[Path, Path]] = {}
        config_dir = self.config_dir if to_start else None
        for component in to_start:
            assert config_dir is not None
            try:
                binary = comp.find_binary(component, self.environ)
            except StackError as exc:
                problems.append(str(exc))
                continue
            relative = (
                comp.jaeger_config_name(self.jaeger_storage)
                if component is comp.JAEGER
                else component.config[0]
            )
            config = comp.find_config(component, config_dir) if component.optional else None
            config = config or config_dir / relative
            if not config.is_file():
                problems.append(f"{component.title}: config {relative} missing in {config_dir}")
                continue
            launches[component.name] = (binary, config)
        problems += _port_conflicts(to_start)
        if problems:
            raise StackError("\n".join(problems))
        return launches

    def _spawn(self, component: Component, binary: Path, config: Path) -> None:
        argv = comp.build_command(component, binary, config, self.state_dir)
        component.data_dir(self.state_dir).mkdir(parents=True, exist_ok=True)
        env = comp.child_environ(component, self.environ, self.state_dir, self.jaeger_storage)
        log_fd = self.state.open_log(component.name)
        try:
            os.write(log_fd, f"# otelperf stack: {format_argv(argv)}\n".encode())
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                cwd=self.state_dir,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal that ran `up` must not stop it
            )
        except OSError as exc:
            raise StackError(f"{component.title}: cannot run {binary}: {exc}") from exc
        finally:
            os.close(log_fd)
        _CHILDREN[proc.pid] = proc
        # Popen returns after exec succeeded, so /proc already shows the new program.
        self.state.write(ProcessRecord(component.name, proc.pid, argv, start_ticks(proc.pid), time.time()))

    def _wait_healthy(self, component: Component, deadline: float, timeout: float) -> None:
        record = self.state.read(component.name)
        waited_from = time.monotonic()
        next_note = waited_from + 5.0
        while True:
            if record is None or not pid_alive(record.pid):
                self._reap(record.pid if record else None)
                raise StackError(self._failure(component, "exited during startup"))
            if probe(component.health_url):
                self.progress(f"{component.title} is healthy ({time.monotonic() - waited_from:.1f} s)")
                return
            now = time.monotonic()
            if now >= deadline:
                raise StackError(
                    self._failure(
                        component, f"not healthy within the {timeout:g} s timeout ({component.health_url})"
                    )
                )
            if now >= next_note:
                self.progress(f"still waiting for {component.title} ({now - waited_from:.0f} s)")
                next_note = now + 5.0
            time.sleep(0.1)

    def _failure(self, component: Component, what: str) -> str:
        log = self.log_path(component.name)
        tail = "\n".join("    " + line for line in tail_lines(log, _LOG_TAIL))
        return f"{component.title} {what}; last lines of {log}:\n{tail}"

    # -- one component ------------------------------------------------------------------------

    def start(self, component: str, timeout: float = 60.0) -> bool:
        """Start one component if it is not running and wait until it is healthy; True when this
        call started it. The others are left as they are (a collector started before Jaeger just
        queues its spans).

        >>> stack.start("jaeger")           # doctest: +SKIP
        True
        """
        target = self._component(component)
        with self._lock():
            if self._running(target):
                return False
            binary, config = self._prepare([target])[target.name]
            self.progress(f"starting {target.title} ({binary})")
            self._spawn(target, binary, config)
            try:
                self._wait_healthy(target, time.monotonic() + timeout, timeout)
            except BaseException:
                self._stop(target, 10.0)
                raise
        return True

    def stop(self, component: str, timeout: float = 10.0, *, kill: bool = False) -> str:
        """Stop one component: SIGTERM (a clean shutdown: the collector keeps its queue on disk),
        SIGKILL after ``timeout`` s; ``kill=True`` sends SIGKILL at once, as a crash would. Returns
        what was done; the others keep running.

        >>> stack.stop("jaeger", kill=True)  # doctest: +SKIP
        'jaeger: killed (SIGKILL) pid 4242 in 0.1 s'
        """
        target = self._component(component)
        with self._lock():
            return self._stop(target, timeout, kill=kill)

    def restart(self, component: str, timeout: float = 60.0, *, kill: bool = False) -> str:
        """``stop`` then ``start`` (healthy again within ``timeout`` s); returns what ``stop`` did."""
        message = self.stop(component, kill=kill)
        self.start(component, timeout)
        return message

    @staticmethod
    def _component(name: str) -> Component:
        try:
            return comp.BY_NAME[name]
        except KeyError:
            raise StackError(f"unknown component {name!r}: one of {', '.join(comp.BY_NAME)}") from None

    # -- down ---------------------------------------------------------------------------------

    def down(self, timeout: float = 10.0, purge: bool = False) -> list[str]:
        """Stop every process this state directory recorded; returns what was done, line by line."""
        messages: list[str] = []
        with self._lock():
            recorded = set(self.state.recorded())
            for component in reversed(comp.COMPONENTS):
                if component.name in recorded:
                    messages.append(self._stop(component, timeout))
                    recorded.discard(component.name)
            for name in sorted(recorded):  # a record of something no longer in the table
                messages.append(f"{name}: unknown component record removed")
                self.state.remove(name)
            if not messages:
                messages.append("nothing was running")
            if purge:
                removed = self.state.purge()
                messages.append(
                    "purged " + ", ".join(str(p) for p in removed) if removed else "nothing to purge"
                )
        return messages

    def _stop(self, component: Component, timeout: float, *, kill: bool = False) -> str:
        record = self.state.read(component.name)
        if record is None:
            return f"{component.name}: not running"
        if not pid_alive(record.pid):
            self.state.remove(component.name)
            self._reap(record.pid)
            return f"{component.name}: was not running (pid {record.pid} gone)"
        if not is_ours(record):
            self.state.remove(component.name)
            return f"{component.name}: pid {record.pid} is no longer the process we started; left alone"
        began = time.monotonic()
        self._signal(record.pid, signal.SIGKILL if kill else signal.SIGTERM)
        how = "killed (SIGKILL)" if kill else "stopped"
        if kill and not self._wait_exit(record.pid, 5.0):
            raise StackError(f"{component.title} (pid {record.pid}) survived SIGKILL")
        if not kill and not self._wait_exit(record.pid, timeout):
            self._signal(record.pid, signal.SIGKILL)
            how = f"killed (did not stop within {timeout:.0f} s of SIGTERM)"
            if not self._wait_exit(record.pid, 5.0):
                raise StackError(f"{component.title} (pid {record.pid}) survived SIGKILL")
        self.state.remove(component.name)
        # The kernel can hold a listening port a moment after the process is gone; the next `up`
        # must find them free (a new Jaeger fails on 14269 otherwise).
        busy = self._wait_ports_free(component, 5.0)
        note = f"; ports still busy: {busy}" if busy else ""
        return f"{component.name}: {how} pid {record.pid} in {time.monotonic() - began:.1f} s{note}"

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                proc = _CHILDREN.get(pid)
                if proc is None:
                    return True
                # Our own child: collect it. A multi-threaded process shows as a zombie as soon as
                # its main thread is gone, but can be collected only once every thread has exited;
                # until then its /proc entry stays (a busy machine widens that window).
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.05, deadline - time.monotonic()))
                    _CHILDREN.pop(pid, None)
                    return True
                continue
            time.sleep(0.05)
        return False

    @staticmethod
    def _reap(pid: int | None) -> None:
        if pid is None:
            return
        proc = _CHILDREN.get(pid)
        if proc is not None and proc.poll() is not None:
            del _CHILDREN[pid]

    @staticmethod
    def _wait_ports_free(component: Component, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            busy = [p.number for p in component.ports if port_in_use(p.number)]
            if not busy or time.monotonic() >= deadline:
                return busy
            time.sleep(0.1)

    # -- status -------------------------------------------------------------------------------

    def status(self, timeout: float = 1.0) -> StackStatus:
        recorded = set(self.state.recorded())
        statuses = []
        for component in comp.COMPONENTS:
            if component.optional and component.name not in recorded:
                continue
            statuses.append(self._component_status(component, timeout))
        collector = next(s for s in statuses if s.name == comp.COLLECTOR.name)
        telemetry: SpanFlow | None = None
        error: str | None = None
        if collector.running:
            try:
                telemetry = span_flow(scrape(COLLECTOR_METRICS_URL, timeout))
            except BackendError as exc:
                error = f"cannot read {COLLECTOR_METRICS_URL}: {exc}"
        delivery: dict[str, ServiceDelivery] | None = None
        delivery_error: str | None = None
        prometheus = next((s for s in statuses if s.name == comp.PROMETHEUS.name), None)
        if prometheus is not None and prometheus.running:
            try:
                delivery = delivery_by_service(URLS["Prometheus"], timeout)
            except (OSError, ValueError, KeyError) as exc:
                delivery_error = f"cannot query Prometheus: {exc}"
        return StackStatus(statuses, telemetry, error, delivery, delivery_error)

    def _component_status(self, component: Component, timeout: float) -> ComponentStatus:
        record = self.state.read(component.name)
        running = record is not None and is_ours(record)
        healthy = running and probe(component.health_url, timeout)
        detail = ""
        if running and not healthy:
            detail = f"not answering {component.health_url}"
        elif not running:
            taken = [p for p in component.ports if port_in_use(p.number)]
            if taken:
                detail = conflict_message(taken[0].number, taken[0].label, find_holder(taken[0].number))
        return ComponentStatus(
            name=component.name,
            title=component.title,
            running=running,
            healthy=healthy,
            pid=record.pid if running and record else None,
            ports=component.ports,
            health_url=component.health_url,
            log=self.log_path(component.name),
            detail=detail,
        )

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One up/down at a time per state directory (parallel test workers, two terminals)."""
        path = self.state_dir / "run" / ".lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
