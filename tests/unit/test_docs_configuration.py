"""docs/configuration.md cannot drift from otelperf.config: one row per setting, with its
variables and its accepted range as the code checks it."""

from __future__ import annotations

from pathlib import Path

from otelperf import config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            name = line.split("`")[1]
            assert name not in rows, f"two rows for {name}"
            rows[name] = line
    return rows


def test_every_setting_has_one_row_naming_its_variables() -> None:
    rows = _rows()
    for name, own_var, std_var, _, _ in config._SPEC:
        assert name in rows, f"docs/configuration.md has no row for {name}"
        assert f"`{own_var}`" in rows[name], f"{name}: {own_var} missing"
        if std_var is not None:
            assert f"`{std_var}`" in rows[name], f"{name}: {std_var} missing"
    assert set(rows) == set(config.SETTING_NAMES), "rows for settings that do not exist"


def test_documented_ranges_are_the_checked_ones() -> None:
    rows = _rows()
    for name in config.BOUNDS:
        accepted = config.accepted_values(name)
        assert accepted in rows[name], f"{name}: the docs should say {accepted!r}"
