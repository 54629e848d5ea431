"""State directory: pid records, recognising our own process, log rotation, purge, tail."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from otelperf.stack.ports import read_cmdline
from otelperf.stack.state import (
    ProcessRecord,
    StateDir,
    argv_matches,
    default_state_dir,
    is_ours,
    pid_alive,
    start_ticks,
    tail_lines,
)


def _own_record() -> ProcessRecord:
    argv = read_cmdline(os.getpid())
    assert argv
    return ProcessRecord("collector", os.getpid(), argv, start_ticks(os.getpid()), time.time())


def test_default_state_dir(tmp_path: Path) -> None:
    assert default_state_dir({}) == Path.home() / ".cache/otelperf/state/stack"
    assert default_state_dir({"OTELPERF_CACHE": str(tmp_path)}) == tmp_path / "state/stack"
    assert default_state_dir({"OTELPERF_STACK_STATE": str(tmp_path / "s"), "OTELPERF_CACHE": "/x"}) == (
        tmp_path / "s"
    )


def test_records_round_trip_and_are_listed(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    record = ProcessRecord("jaeger", 123, ["/bin/jaeger", "--config", "c.yaml"], 999, 1.5)
    state.write(record)
    assert state.read("jaeger") == record
    assert state.recorded() == ["jaeger"]
    assert not list((tmp_path / "run").glob("*.tmp"))
    state.remove("jaeger")
    assert state.read("jaeger") is None
    assert state.recorded() == []


def test_a_corrupt_record_reads_as_none(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.record_path("jaeger").parent.mkdir(parents=True)
    state.record_path("jaeger").write_text('{"pid": "not a number"')
    assert state.read("jaeger") is None


def test_our_own_process_is_recognised() -> None:
    assert pid_alive(os.getpid())
    assert is_ours(_own_record())


def test_a_pid_running_something_else_is_not_ours() -> None:
    record = _own_record()
    other = ProcessRecord(record.component, record.pid, ["/usr/bin/prometheus"], record.start_ticks, 0.0)
    assert not is_ours(other)


def test_a_reused_pid_with_the_same_command_is_not_ours() -> None:
    record = _own_record()
    assert record.start_ticks is not None
    reused = ProcessRecord(record.component, record.pid, record.argv, record.start_ticks + 1, 0.0)
    assert not is_ours(reused)


def test_an_exited_process_is_not_alive_even_before_it_is_reaped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(proc.pid)  # a zombie until wait() below
    assert Path(f"/proc/{proc.pid}").exists()
    proc.wait()
    assert not pid_alive(proc.pid)


def test_argv_matches_exactly_or_behind_a_script_interpreter() -> None:
    argv = ["/opt/otelcol-wrapper", "--config", "c.yaml"]
    assert argv_matches(argv, argv)
    assert argv_matches(["/bin/sh", *argv], argv)
    assert not argv_matches(["/opt/otelcol-wrapper", "--config", "other.yaml"], argv)
    assert not argv_matches(["sleep", "60"], argv)
    assert not argv_matches(None, argv)


def test_each_run_gets_a_fresh_log_and_keeps_the_previous_one(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    for text in (b"first run\n", b"second run\n"):
        fd = state.open_log("collector")
        os.write(fd, text)
        os.close(fd)
    assert state.log_path("collector").read_bytes() == b"second run\n"
    assert (tmp_path / "logs" / "collector.log.1").read_bytes() == b"first run\n"


def test_purge_removes_only_what_otelperf_created(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    state.write(ProcessRecord("jaeger", 1, ["j"], None, 0.0))
    (tmp_path / "state" / "data" / "prometheus" / "wal").mkdir(parents=True)
    os.close(state.open_log("jaeger"))
    (tmp_path / "state" / "notes.txt").write_text("the user's")
    removed = state.purge()
    assert sorted(p.name for p in removed) == ["data", "logs", "run"]
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["notes.txt"]
    (tmp_path / "state" / "notes.txt").unlink()
    assert state.purge() == []
    assert not (tmp_path / "state").exists()  # an empty dir goes too


def test_tail_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert tail_lines(log, 3) == ["line 99997", "line 99998", "line 99999"]
    assert tail_lines(log, 0) == []
    short = tmp_path / "short.log"
    short.write_text("a\nb")
    assert tail_lines(short, 10) == ["a", "b"]
    assert tail_lines(tmp_path / "missing.log", 5) == []
