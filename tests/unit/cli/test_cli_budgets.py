"""``otelperf budgets check [FILE]``: the resolved budgets, or the problem with file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from otelperf.cli import main

REPO = Path(__file__).resolve().parents[3]

GOOD = """
service = "shop"
[defaults]
p95 = "400ms"
[routes."GET /orders/{order_id}"]
p95 = "200ms"
[slo]
target = "99.5%"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_cli_budgets_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "otelperf.toml", GOOD)
    assert main(["budgets", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "GET /orders/{order_id}" in out and "200 ms" in out and "99.500%" in out
    bad = write(tmp_path / "bad.toml", "[cache]\nmin_hit = 1\n")
    assert main(["budgets", "check", str(bad)]) == 1
    assert f"{bad}:2: cache.min_hit: unknown key" in capsys.readouterr().err


def test_budgets_check_of_the_example_shop_and_of_the_file_found_from_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["budgets", "check", "examples/shop/otelperf.toml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("budgets from examples/shop/otelperf.toml\nservice: shop\n")
    assert "GET /orders/{order_id}" in out

    found = write(tmp_path / "otelperf.toml", GOOD)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["budgets", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"budgets from {found}\n")
