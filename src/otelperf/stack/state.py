"""The state directory: one record per started process, its log, its data.

Layout (default ~/.cache/otelperf/state/stack)::

    run/<component>.json     pid, argv, start time (to recognise our own process later)
    logs/<component>.log     stdout+stderr; the previous run's log is kept as <component>.log.1
    data/<component>/        Prometheus TSDB, Jaeger Badger files, Alertmanager silences, the
                             collector's persistent sending queue (spans not yet in Jaeger)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from otelperf.stack.ports import read_cmdline

SUBDIRS = ("run", "logs", "data")


def default_state_dir(environ: Mapping[str, str]) -> Path:
    value = environ.get("OTELPERF_STACK_STATE")
    if value:
        return Path(value).expanduser()
    cache = environ.get("OTELPERF_CACHE")
    root = Path(cache).expanduser() if cache else Path.home() / ".cache" / "otelperf"
    return root / "state" / "stack"


@dataclass(frozen=True)
class ProcessRecord:
    component: str
    pid: int
    argv: list[str]
    start_ticks: int | None  # /proc/<pid>/stat field 22: tells a reused pid apart
    started_at: float


class StateDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    def record_path(self, component: str) -> Path:
        return self.root / "run" / f"{component}.json"

    def log_path(self, component: str) -> Path:
        return self.root / "logs" / f"{component}.log"

    def write(self, record: ProcessRecord) -> None:
        path = self.record_path(record.component)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(path)  # atomic: a concurrent `status` never reads half a file

    def read(self, component: str) -> ProcessRecord | None:
        try:
            data = json.loads(self.record_path(component).read_text())
            return ProcessRecord(
                component=str(data["component"]),
                pid=int(data["pid"]),
                argv=[str(a) for a in data["argv"]],
                start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
                started_at=float(data["started_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove(self, component: str) -> None:
        self.record_path(component).unlink(missing_ok=True)

    def recorded(self) -> list[str]:
        try:
            return sorted(p.stem for p in (self.root / "run").glob("*.json"))
        except OSError:
            return []

    def open_log(self, component: str) -> int:
        """A fresh log file for a new run (keeps the previous one as .log.1); returns an fd."""
        path = self.log_path(component)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > 0:
            path.replace(path.with_name(path.name + ".1"))
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def purge(self) -> list[Path]:
        """Delete what this directory holds (only the subdirectories otelperf creates)."""
        removed = []
        for name in SUBDIRS:
            path = self.root / name
            if path.exists():
                shutil.rmtree(path)
                removed.append(path)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only when empty: a user-chosen dir may hold other things
        return removed


def start_ticks(pid: int, proc: Path = Path("/proc")) -> int | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, proc: Path = Path("/proc")) -> bool:
    """Running (a zombie, exited but not yet reaped by its parent, is not)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2 :].split(maxsplit=1)[:1]
    return state not in (["Z"], ["X"])


def argv_matches(cmdline: Sequence[str] | None, argv: Sequence[str]) -> bool:
    """The process runs ``argv``: exactly, or as ``interpreter argv...`` (a script with a #! line,
    e.g. a wrapper given in OTELPERF_OTELCOL)."""
    if cmdline is None:
        return False
    cmdline, argv = list(cmdline), list(argv)
    return cmdline == argv or (len(cmdline) >= 2 and cmdline[-len(argv) :] == argv)


def is_ours(record: ProcessRecord, proc: Path = Path("/proc")) -> bool:
    """The recorded pid is alive and still the process we started: same command line and same
    start time (a pid reused by another process, even one running the same command, differs)."""
    if not pid_alive(record.pid, proc):
        return False
    if not argv_matches(read_cmdline(record.pid, proc), record.argv):
        return False
    return record.start_ticks is None or start_ticks(record.pid, proc) == record.start_ticks


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file (reads at most a few MB from the end)."""
    if count <= 0:
        return []
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block = 65536
            data = b""
            while size > 0 and data.count(b"\n") <= count and len(data) < 8 * 1024 * 1024:
                step = min(block, size)
                size -= step
                fh.seek(size)
                data = fh.read(step) + data
    except OSError:
        return []
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:]


def format_argv(argv: Sequence[str]) -> str:
    return " ".join(argv)
