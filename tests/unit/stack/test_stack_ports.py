"""Port checks and finding the process that holds a port (real sockets, real /proc)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from otelperf.stack.ports import Holder, conflict_message, find_holder, listening_inodes, port_in_use

# /proc/net/tcp as the kernel writes it: a LISTEN socket on 127.0.0.1:4318 (0x10DE), an
# established connection from that port (state 01), and a LISTEN socket on 0.0.0.0:9090 (0x2382).
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:10DE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:10DE 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 41002 1 0000000000000000 20 4 30 10 -1
   2: 00000000:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41003 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501 (verbatim kernel/exporter output)
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:10DE 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 52001 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501 (verbatim kernel/exporter output)


def test_listening_inodes_reads_only_listen_sockets_of_that_port() -> None:
    assert listening_inodes(PROC_NET_TCP, 4318) == {41001}
    assert listening_inodes(PROC_NET_TCP, 9090) == {41003}
    assert listening_inodes(PROC_NET_TCP, 4317) == set()
    assert listening_inodes(PROC_NET_TCP6, 4318) == {52001}
    assert listening_inodes("garbage\nnot a table\n", 4318) == set()


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_listening_port_is_in_use_and_its_holder_is_found(listener: int) -> None:
    assert port_in_use(listener)
    holder = find_holder(listener)
    assert holder is not None
    assert holder.pid == os.getpid()
    assert "pytest" in holder.cmdline or "python" in holder.cmdline


def test_a_closed_port_is_free_and_has_no_holder() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert not port_in_use(port)
    assert find_holder(port) is None


def test_a_wildcard_listener_blocks_the_loopback_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
        holder = find_holder(port)
        assert holder is not None and holder.pid == os.getpid()


def test_conflict_message_names_port_process_and_fix() -> None:
    assert conflict_message(
        4318, "collector OTLP/HTTP", Holder(4242, "/usr/bin/otelcol --config x.yaml")
    ) == (
        "port 4318 (collector OTLP/HTTP) is in use by pid 4242 (/usr/bin/otelcol --config x.yaml)"
        " — stop it or run `otelperf stack down`"
    )
    assert conflict_message(9090, "Prometheus", None) == (
        "port 9090 (Prometheus) is in use by another process — stop it or run `otelperf stack down`"
    )
    long = conflict_message(9090, "Prometheus", Holder(1, "x" * 500))
    assert "x" * 117 + "..." in long and "x" * 118 not in long
