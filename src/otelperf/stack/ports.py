"""Is a loopback port free, and if not, which process holds it (Linux /proc, best effort)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_LISTEN = "0A"  # TCP state code for LISTEN in /proc/net/tcp{,6}


@dataclass(frozen=True)
class Holder:
    pid: int
    cmdline: str


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could not bind host:port now.

    SO_REUSEADDR like the Go and Prometheus servers use, so connections in TIME_WAIT left by a
    stopped server do not count as "in use" (they do not stop the real server either).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def listening_inodes(proc_net_tcp: str, port: int) -> set[int]:
    """Socket inodes listening on ``port`` in the text of /proc/net/tcp or /proc/net/tcp6."""
    inodes: set[int] = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        _, _, port_hex = fields[1].rpartition(":")
        try:
            if int(port_hex, 16) == port:
                inodes.add(int(fields[9]))
        except ValueError:
            continue
    return inodes


def read_cmdline(pid: int, proc: Path = Path("/proc")) -> list[str] | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]] if raw else []


def find_holder(port: int, proc: Path = Path("/proc")) -> Holder | None:
    """The process listening on ``port``, or None when it cannot be seen (other user, no /proc)."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            inodes |= listening_inodes((proc / "net" / table).read_text(), port)
        except OSError:
            continue
    inodes.discard(0)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    try:
        pids = [int(entry) for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return None
    for pid in sorted(pids):
        fd_dir = proc / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd_dir / fd) in targets:
                    cmdline = read_cmdline(pid, proc) or []
                    return Holder(pid, " ".join(cmdline) or "?")
            except OSError:
                continue
    return None


def conflict_message(port: int, label: str, holder: Holder | None) -> str:
    who = f"pid {holder.pid} ({_shorten(holder.cmdline)})" if holder else "another process"
    return f"port {port} ({label}) is in use by {who} — stop it or run `otelperf stack down`"


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
