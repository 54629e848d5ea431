"""Every ``otelperf`` command the docs show works, and something runs it.

- Each command line in a shell code block of README.md and docs/*.md, and each inline
  ```otelperf <command> ...``` in their text, is parsed by the real parser: a renamed command or
  flag fails here, not in a reader's terminal. Inline text may name a command without the
  arguments it requires (```otelperf generate```, ```otelperf report --html```), never one it
  does not have.
- Each command line of a code block is listed in ``RUN_BY`` with the test that runs it for real,
  and that test exists and runs that command. A command added to the docs needs an entry (and a
  test); one that leaves the docs must leave ``RUN_BY`` too.
"""

from __future__ import annotations

import ast
import contextlib
import io
import itertools
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from otelperf.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Documented command line (as shown, comment left out) -> "test file::test function" that runs it.
RUN_BY = {
    "otelperf run --service-name shop -- uvicorn app:app --workers 2": (
        "tests/integration/test_zero_code.py::test_otelperf_run_instruments_every_uvicorn_worker"
    ),
    "python -m otelperf run --service-name shop -- uvicorn app:app --workers 2": (
        "tests/unit/cli/test_cli_run.py::test_python_m_otelperf_run_starts_otelperf_in_the_child"
    ),
    "otelperf doctor": "tests/unit/cli/test_cli_doctor.py::test_the_doctor_command_line",
    "otelperf doctor --json": "tests/unit/cli/test_cli_doctor.py::test_the_doctor_command_line",
    "otelperf report --window 15m": (
        "tests/unit/cli/test_cli_report.py::test_report_ranks_findings_by_the_time_they_cost"
    ),
    "otelperf report --window 15m --version 2.0": (
        "tests/unit/report/test_report_lifecycle.py::test_report_of_an_explicit_version"
    ),
    "otelperf report --html report.html --service shop --since 15m": (
        "tests/unit/cli/test_cli_report.py::test_html_report_of_a_window_with_budgets_and_a_baseline"
    ),
    "otelperf report --html report.html --budgets otelperf.toml --baseline baselines/shop.json": (
        "tests/unit/cli/test_cli_report.py::test_html_report_of_a_window_with_budgets_and_a_baseline"
    ),
    "otelperf trace 4bf92f3577b34da6a3ce929d0e0e4736": (
        "tests/unit/cli/test_cli_trace.py::test_the_trace_command_prints_the_waterfall_with_the_n_plus_one_marked"
    ),
    "otelperf stack up": "tests/integration/test_stack.py::test_cli_up_status_down",
    "otelperf stack status": "tests/integration/test_stack.py::test_cli_up_status_down",
    "otelperf stack logs collector": "tests/integration/test_stack.py::test_cli_up_status_down",
    "otelperf stack down": "tests/integration/test_stack.py::test_cli_up_status_down",
    "otelperf loadtest --scenario mixed --duration 60s --users 20 --host http://127.0.0.1:8000 "
    "--budgets examples/shop/otelperf.toml": (
        "tests/e2e/test_e2e_loadtest.py::test_loadtest_thresholds_client_metrics_and_baseline_gate"
    ),
    "otelperf baseline record --out baselines/shop.json --runs 3": (
        "tests/e2e/test_e2e_loadtest.py::test_loadtest_thresholds_client_metrics_and_baseline_gate"
    ),
    "otelperf baseline compare --baseline baselines/shop.json --runs 3 --tolerance 20%": (
        "tests/e2e/test_e2e_loadtest.py::test_loadtest_thresholds_client_metrics_and_baseline_gate"
    ),
    "otelperf budgets check examples/shop/otelperf.toml": (
        "tests/unit/cli/test_cli_budgets.py::"
        "test_budgets_check_of_the_example_shop_and_of_the_file_found_from_here"
    ),
    "otelperf budgets check": (
        "tests/unit/cli/test_cli_budgets.py::"
        "test_budgets_check_of_the_example_shop_and_of_the_file_found_from_here"
    ),
    "otelperf generate all --budgets examples/shop/otelperf.toml --out .": (
        "tests/unit/cli/test_cli_generate.py::test_generate_all_into_the_working_directory_as_documented"
    ),
}

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SHELL = {"bash", "sh", "shell", "console"}
_INLINE = re.compile(r"`(otelperf [a-z][^`]*)`")
_COMMAND_LINE = re.compile(r"^(\$ )?(\S*/)?(otelperf|python3? -m otelperf) ")


def _argv(tokens: list[str]) -> list[str] | None:
    """The arguments after the program, if the tokens are an otelperf command line."""
    if tokens and Path(tokens[0]).name == "otelperf":
        return tokens[1:]
    if tokens[:3] in (["python", "-m", "otelperf"], ["python3", "-m", "otelperf"]):
        return tokens[3:]
    return None


@cache
def fenced_commands() -> dict[str, tuple[str, list[str]]]:
    """``{command as shown: (doc, argv)}`` for the otelperf lines of every shell code block."""
    found: dict[str, tuple[str, list[str]]] = {}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in _FENCE.finditer(text):
            if block.group(1).strip() not in _SHELL:
                continue
            for line in block.group(2).replace("\\\n", " ").splitlines():
                if not _COMMAND_LINE.match(line.strip()):
                    continue
                tokens = shlex.split(line.strip().removeprefix("$ "), comments=True)
                argv = _argv(tokens)
                assert argv is not None, line
                found.setdefault(" ".join(tokens), (doc.name, argv))
    return found


def inline_commands() -> list[tuple[str, str]]:
    """``(doc, text)`` of every `otelperf <command> ...` written inline in prose or a table."""
    found = []
    for doc in DOCS:
        prose = _FENCE.sub("", doc.read_text(encoding="utf-8"))
        found += [(doc.name, " ".join(m.group(1).split())) for m in _INLINE.finditer(prose)]
    return found


def variants(text: str) -> list[list[str]]:
    """The command lines an inline synopsis stands for: ``[optional]`` parts left out, each
    ``a|b`` alternative (``\\|`` in a table) taken in turn."""
    text = re.sub(r"\[[^\]]*\]", " ", text.replace("\\|", "|"))
    tokens = [t for t in shlex.split(text) if t != "..."]
    return [list(choice) for choice in itertools.product(*(t.split("|") for t in tokens))]


def parse_error(argv: list[str]) -> str | None:
    """What the real parser says about ``argv``, or None when it accepts it."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(argv)
    except SystemExit:
        return stderr.getvalue().strip().splitlines()[-1]
    return None


def test_the_docs_show_commands() -> None:
    # If the extraction broke, every other test here would pass on nothing.
    assert len(fenced_commands()) >= 15
    assert len(inline_commands()) >= 30


@pytest.mark.parametrize("command", sorted(fenced_commands()))
def test_every_command_in_a_code_block_parses(command: str) -> None:
    doc, argv = fenced_commands()[command]
    error = parse_error(argv)
    assert error is None, f"{doc}: `{command}`: {error}"


# Inline text names a command; a code block shows one to run.
_INCOMPLETE = ("the following arguments are required", "expected one argument")


def test_every_inline_command_parses() -> None:
    failures = []
    for doc, text in inline_commands():
        for argv in variants(text[len("otelperf ") :]):
            error = parse_error(argv)
            if error is not None and not any(reason in error for reason in _INCOMPLETE):
                failures.append(f"{doc}: `{text}` as `otelperf {' '.join(argv)}`: {error}")
    assert not failures, "\n".join(failures)


def test_every_command_in_a_code_block_is_run_by_a_test() -> None:
    shown = set(fenced_commands())
    missing = sorted(shown - set(RUN_BY))
    assert not missing, "documented commands that no test is listed as running:\n" + "\n".join(missing)
    stale = sorted(set(RUN_BY) - shown)
    assert not stale, "RUN_BY lists commands the docs no longer show:\n" + "\n".join(stale)


@cache
def _strings_and_functions(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    return frozenset(strings), frozenset(functions)


@pytest.mark.parametrize("command", sorted(RUN_BY))
def test_the_named_test_exists_and_runs_that_command(command: str) -> None:
    file, function = RUN_BY[command].split("::")
    path = ROOT / file
    assert path.is_file(), f"{command}: {file} does not exist"
    strings, functions = _strings_and_functions(path)
    assert function in functions, f"{command}: no function {function} in {file}"
    # The command's words (before its first option), e.g. "stack" and "up", are in the test.
    argv = _argv(shlex.split(command)) or []
    words = list(itertools.takewhile(lambda token: not token.startswith("-"), argv))
    words = [w for w in words if "/" not in w and "." not in w]
    assert words, command
    absent = [w for w in words if w not in strings]
    assert not absent, f"{file} never says {absent}: does it run `{command}`?"
