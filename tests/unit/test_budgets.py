from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otelperf.budgets import BudgetError, Budgets, find_budgets_file, load_budgets
from otelperf.config import resolve_settings


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


GOOD = """
service = "shop"
[defaults]
p95 = "400ms"
error_rate = "2%"
min_rps = 50
[routes."GET /orders/{order_id}"]
p95 = "200ms"
p99 = "0.4s"
min_rps = "5/s"
[routes."post /orders"]
error_rate = 0.005
[db]
avg_query = 80
max_query = "2s"
pool_max_utilization = "90%"
[cache]
min_hit_ratio = 0.7
[slo]
target = "99.5%"
window = "4w"
[alerts]
for = "2m"
"""


def test_good_file_resolves_every_budget(tmp_path: Path) -> None:
    b = load_budgets(write(tmp_path / "otelperf.toml", GOOD))
    assert b.service == "shop" and b.source == str(tmp_path / "otelperf.toml")
    assert (b.default.p95_ms, b.default.error_rate, b.default.min_rps) == (400.0, 0.02, 50.0)
    orders = b.for_route("GET /orders/{order_id}")
    assert (orders.p95_ms, orders.p99_ms, orders.error_rate, orders.min_rps) == (200.0, 400.0, 0.02, 5.0)
    post = b.for_route("POST /orders")  # method normalized; unset keys inherit [defaults] but not min_rps
    assert (post.p95_ms, post.error_rate, post.min_rps) == (400.0, 0.005, None)
    assert b.for_route("GET /unknown") is b.default
    assert (b.db_avg_query_ms, b.db_max_query_ms, b.pool_max_utilization) == (80.0, 2000.0, 0.9)
    assert (b.cache_min_hit_ratio, b.slo_target, b.slo_window_days, b.alert_for_s) == (0.7, 0.995, 28, 120.0)
    assert b.latency_budgets_ms() == {"*": 400.0, "GET /orders/{order_id}": 200.0, "POST /orders": 400.0}


def test_no_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    b = load_budgets(start=tmp_path)
    assert b == Budgets() and b.source is None
    d = b.default
    assert (d.route, d.p95_ms, d.p99_ms, d.error_rate, d.min_rps) == ("*", 500.0, None, 0.01, 100.0)
    assert (b.db_avg_query_ms, b.db_max_query_ms, b.pool_max_utilization) == (100.0, 1000.0, 0.8)
    assert (b.cache_min_hit_ratio, b.slo_target, b.slo_window_days) == (0.5, 0.999, 28)


@pytest.mark.parametrize(
    ("text", "line", "key", "says"),
    [
        ('[defaults]\np95 = "fast"\n', 2, "defaults.p95", "accepted: a duration"),
        ('[defaults]\nerror_rate = "150%"\n', 2, "defaults.error_rate", "percentage"),
        (
            '[db]\navg_query = "10ms"\npool_max_utilisation = "80%"\n',
            3,
            "db.pool_max_utilisation",
            "did you mean 'pool_max_utilization'?",
        ),
        ('service = "s"\n\n[routes."/orders"]\np95 = 100\n', 3, 'routes."/orders"', "METHOD /template"),
        ('[routes."GET /a"]\np95 = "300ms"\np99 = "200ms"\n', 3, 'routes."GET /a".p99', "p99 >= p95"),
        (
            '[routes."GET /a"]\nerrror_rate = 1\n',
            2,
            'routes."GET /a".errror_rate',
            "did you mean 'error_rate'?",
        ),
        ('[slo]\ntarget = "100%"\n', 2, "slo.target", "below 100"),
        ('[slo]\nwindow = "1y"\n', 2, "slo.window", "days"),
        ("servce = 'x'\n", 1, "servce", "did you mean 'service'?"),
        ('[db]\navg_query = "2s"\nmax_query = "1s"\n', 2, "db.avg_query", "avg_query <= max_query"),
        ('db = { max_query = "soon" }\n', 1, "db.max_query", "duration"),
        ('[defaults]\np95 = "500ms\n', 2, "(syntax)", "TOML"),
    ],
)
def test_bad_file_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, says: str) -> None:
    path = tmp_path / "otelperf.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BudgetError) as info:
        load_budgets(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {key}: "), message
    assert says in message


def test_pyproject_tool_table_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        """
        [project]
        name = "x"

        [tool.otelperf]
        service = "api"
        [tool.otelperf.routes."GET /items"]
        p95 = "150ms"
        p96 = "1s"
    """,
    )
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    assert find_budgets_file(sub) == tmp_path / "pyproject.toml"
    with pytest.raises(
        BudgetError, match=r'pyproject.toml:8: tool.otelperf.routes."GET /items".p96: unknown key'
    ):
        load_budgets(start=sub)
    (tmp_path / "pyproject.toml").write_text(
        (tmp_path / "pyproject.toml").read_text().replace('p96 = "1s"\n', ""), encoding="utf-8"
    )
    b = load_budgets(start=sub)
    assert b.service == "api" and b.for_route("GET /items").p95_ms == 150.0


def test_otelperf_toml_wins_and_pyproject_without_table_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "otelperf.toml", 'service = "outer"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    write(inner / "pyproject.toml", '[project]\nname = "x"\n')
    assert load_budgets(start=inner).service == "outer"


def test_settings_take_p95_budgets_from_the_file_kwarg_and_env_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "otelperf.toml", GOOD)
    monkeypatch.chdir(tmp_path)
    s = resolve_settings(environ={})
    assert s.budgets == {"*": 400.0, "GET /orders/{order_id}": 200.0, "POST /orders": 400.0}
    assert s.sources["budgets"] == f"file {tmp_path / 'otelperf.toml'}"
    assert resolve_settings(environ={"OTELPERF_BUDGETS": "*=900ms"}).budgets == {"*": 900.0}
    assert resolve_settings(environ={}, budgets={"*": 1}).budgets == {"*": 1.0}
    assert resolve_settings(environ={"OTELPERF_BUDGETS_FILE": "none"}).budgets == {}


def test_settings_with_a_bad_file_warn_or_raise_when_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otelperf.config import ConfigError

    write(tmp_path / "b.toml", "[defaults]\np95 = -1\n")
    env = {"OTELPERF_BUDGETS_FILE": str(tmp_path / "b.toml")}
    assert resolve_settings(environ=env).budgets == {}
    with pytest.raises(ConfigError, match=r"b.toml:2: defaults.p95"):
        resolve_settings(environ=env, strict=True)


def test_a_pyproject_that_never_names_otelperf_is_skipped_without_parsing(tmp_path: Path) -> None:
    # Broken TOML: parsed, it would still be skipped (the table cannot be in it), so the shortcut
    # is unobservable except in cost; one that mentions otelperf is parsed as before.
    write(tmp_path / "pyproject.toml", '[project\nname = "x"\n')
    assert find_budgets_file(tmp_path) is None
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\ndependencies = ["otelperf"]\n')
    assert find_budgets_file(tmp_path) is None
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n[tool.otelperf]\nservice = "api"\n')
    assert find_budgets_file(tmp_path) == tmp_path / "pyproject.toml"


def test_settings_without_a_budgets_file_import_no_toml_parser(tmp_path: Path) -> None:
    # Every process that init() starts in looks for a budgets file; most have none.
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    code = (
        "import sys; from otelperf.config import resolve_settings; resolve_settings(environ={}); "
        "print(sorted(m for m in ('tomllib', 'tomli', 'difflib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr
