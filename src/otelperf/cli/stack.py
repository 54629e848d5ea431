"""``otelperf stack up|down|status|logs``: the command-line face of :class:`otelperf.stack.Stack`.

Exit codes: 0 ok; 1 could not do it (the message says why and how to fix it); 3 ``status``
found a component down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from otelperf.stack.manager import Stack, StackStatus

EXIT_FAILED = 1
EXIT_DOWN = 3


def _say(message: str) -> None:
    print(message, flush=True)


def run_stack_command(args: argparse.Namespace) -> int:
    # The stack's modules load only when this command runs, not for every `otelperf ...`.
    from otelperf.stack.components import StackError
    from otelperf.stack.manager import Stack

    try:
        stack = Stack(
            args.config_dir,
            args.state_dir,
            with_alertmanager=getattr(args, "with_alertmanager", None),
            jaeger_storage=getattr(args, "jaeger_storage", "memory"),
            progress=_say,
        )
        if args.action == "up":
            return _up(stack, args.timeout)
        if args.action == "down":
            for line in stack.down(timeout=args.timeout, purge=args.purge):
                _say(line)
            return 0
        if args.action == "status":
            return _status(stack, args.json, args.timeout)
        if args.action == "logs":
            return _logs(stack, args.component, args.lines, args.follow, sys.stdout)
    except StackError as exc:
        lines = str(exc).splitlines() or ["failed"]
        if len(lines) == 1:
            print(f"otelperf stack {args.action}: {lines[0]}", file=sys.stderr)
        else:
            print(
                f"otelperf stack {args.action}:", *("  " + line for line in lines), sep="\n", file=sys.stderr
            )
        return EXIT_FAILED
    raise AssertionError(f"unknown action {args.action!r}")  # argparse restricts the choices


def _up(stack: Stack, timeout: float) -> int:
    from otelperf.stack.manager import URLS

    _say(f"otelperf stack: configs from {stack.config_dir}, state in {stack.state_dir}")
    result = stack.up(timeout=timeout)
    for note in result.notes:
        _say(f"note: {note}")
    if result.started:
        _say(f"stack up in {result.seconds:.1f} s (started: {', '.join(result.started)})")
    else:
        _say(f"stack already running ({', '.join(result.already_running)}); nothing started")
    width = max(len(name) for name in URLS)
    for name, url in result.urls.items():
        _say(f"  {name:<{width}}  {url}")
    _say(f"logs: `otelperf stack logs [component]` (files in {stack.state_dir / 'logs'})")
    _say("stop: `otelperf stack down`")
    return 0


def format_status(status: StackStatus) -> list[str]:
    lines = []
    for c in status.components:
        state = "running" if c.running else "stopped"
        health = ("healthy" if c.healthy else "UNHEALTHY") if c.running else "-"
        pid = f"pid {c.pid}" if c.pid else "-"
        ports = ",".join(str(p.number) for p in c.ports)
        line = f"{c.name:<12} {state:<8} {pid:<11} {health:<9} ports {ports}"
        lines.append(line + (f"\n{'':<12} {c.detail}" if c.detail else ""))
    if status.telemetry is not None:
        lines.append(f"telemetry: {status.telemetry.describe()}")
    elif status.telemetry_error:
        lines.append(f"telemetry: unknown ({status.telemetry_error})")
    else:
        lines.append("telemetry: collector not running")
    if status.delivery:
        lines.append("span delivery per service (otel.sdk.* metrics the services exported):")
        width = max(len(name) for name in status.delivery)
        for name, figures in sorted(status.delivery.items()):
            lines.append(f"  {name:<{width}}  {figures.describe()}")
    elif status.delivery_error:
        lines.append(f"span delivery: unknown ({status.delivery_error})")
    return lines


def _status(stack: Stack, as_json: bool, timeout: float) -> int:
    from otelperf.stack.manager import URLS

    status = stack.status(timeout=timeout)
    if as_json:
        print(json.dumps({**status.to_dict(), "state_dir": str(stack.state_dir)}, indent=2))
    else:
        for line in format_status(status):
            _say(line)
        if status.all_up:
            _say(f"Jaeger {URLS['Jaeger UI/API']}  Prometheus {URLS['Prometheus']}")
    return 0 if status.all_up else EXIT_DOWN


def _logs(stack: Stack, component: str | None, count: int, follow: bool, out: TextIO) -> int:
    from otelperf.stack.components import COMPONENTS, StackError
    from otelperf.stack.state import tail_lines

    names = [component] if component else [c.name for c in COMPONENTS]
    paths = {name: stack.log_path(name) for name in names}
    existing = {name: path for name, path in paths.items() if path.exists()}
    if not existing:
        raise StackError(
            f"no log yet under {stack.state_dir / 'logs'}: start the stack with `otelperf stack up`"
        )
    for name, path in existing.items():
        if len(existing) > 1:
            out.write(f"==> {name} ({path}) <==\n")
        for line in tail_lines(path, count):
            out.write(line + "\n")
    out.flush()
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            follow_files(existing if component else paths, out, prefix=component is None)
    return 0


def follow_files(paths: dict[str, Path], out: TextIO, prefix: bool, stop_after: float | None = None) -> None:
    """``tail -f`` for several files; a file that shrinks or is replaced (a new `up` rotates the
    log) is read again from its start."""
    positions: dict[str, tuple[int, int]] = {}  # name -> (inode, offset)
    for name, path in paths.items():
        try:
            st = path.stat()
            positions[name] = (st.st_ino, st.st_size)
        except OSError:
            positions[name] = (0, 0)
    pending: dict[str, str] = {name: "" for name in paths}
    began = time.monotonic()
    while stop_after is None or time.monotonic() - began < stop_after:
        for name, path in paths.items():
            try:
                st = path.stat()
            except OSError:
                continue
            inode, offset = positions[name]
            if st.st_ino != inode or st.st_size < offset:
                offset = 0
            if st.st_size > offset:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                offset += len(chunk)
                text = pending[name] + chunk.decode(errors="replace")
                *complete, pending[name] = text.split("\n")
                for line in complete:
                    out.write(f"{name}: {line}\n" if prefix else line + "\n")
                out.flush()
            positions[name] = (st.st_ino, offset)
        time.sleep(0.25)


def add_parser(sub: Any) -> None:
    """Register ``otelperf stack up|down|status|logs`` on the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config-dir",
        help="otelperf checkout holding collector-config/, jaeger/, prometheus/ "
        "(default: this checkout; env OTELPERF_STACK_CONFIG_DIR)",
    )
    common.add_argument(
        "--state-dir",
        help="pids, logs and data (default ~/.cache/otelperf/state/stack; env OTELPERF_STACK_STATE)",
    )
    stack = sub.add_parser(
        "stack",
        help="run the local backend: collector, Jaeger, Prometheus",
        description="Start, stop and inspect the local OpenTelemetry Collector, Jaeger and Prometheus.",
    )
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", parents=[common], help="start the stack and wait until it is healthy")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for health (default 60)")
    alertmanager = up.add_mutually_exclusive_group()
    alertmanager.add_argument(
        "--with-alertmanager",
        action="store_const",
        const=True,
        default=None,
        help="also run Alertmanager on 127.0.0.1:9093 (default: when installed and configured)",
    )
    alertmanager.add_argument("--without-alertmanager", dest="with_alertmanager", action="store_false")
    up.add_argument(
        "--jaeger-storage", choices=["memory", "badger"], default="memory", help="badger keeps traces"
    )
    down = actions.add_parser("down", parents=[common], help="stop the processes `up` started")
    down.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL (default 10)")
    down.add_argument("--purge", action="store_true", help="also delete logs and stored data")
    status = actions.add_parser("status", parents=[common], help="what runs, its health, spans flowing")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--timeout", type=float, default=1.0, help="seconds per health probe")
    logs = actions.add_parser("logs", parents=[common], help="print (or follow) the components' logs")
    logs.add_argument("component", nargs="?", choices=["collector", "jaeger", "prometheus", "alertmanager"])
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines per log (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    stack.set_defaults(func=run_stack_command)
