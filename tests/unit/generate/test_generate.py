from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

from otelperf.budgets import load_budgets
from otelperf.cli import main
from otelperf.generate import KINDS, _yaml, render
from otelperf.generate.rules import build_rules

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "shop" / "otelperf.toml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def budgets_file(tmp_path: Path) -> Path:
    path = tmp_path / "otelperf.toml"
    path.write_text(
        textwrap.dedent("""
            service = "shop"
            [defaults]
            p95 = "500ms"
            [routes."GET /orders/{order_id}"]
            p95 = "200ms"
            p99 = "400ms"
            error_rate = "0.5%"
            [alerts]
            for = "1m"
        """),
        encoding="utf-8",
    )
    return path


def rules_of(tmp_path: Path) -> dict[str, list[dict[str, object]]]:
    doc = build_rules(load_budgets(budgets_file(tmp_path)))
    return {g["name"]: g["rules"] for g in doc["groups"]}


def test_committed_files_match_a_fresh_generation_from_the_example_budgets() -> None:
    files = render(load_budgets(EXAMPLE), KINDS, out=REPO)
    assert "prometheus/rules/otelperf.rules.yml" in files and "grafana/dashboards/otelperf-red.json" in files
    stale = [rel for rel, text in files.items() if (REPO / rel).read_text(encoding="utf-8") != text]
    assert not stale, (
        f"{stale} differ from {EXAMPLE.relative_to(REPO)}: run "
        "`otelperf generate all --budgets examples/shop/otelperf.toml --out .`"
    )


def test_route_budget_becomes_its_own_alerts_and_the_default_skips_it(tmp_path: Path) -> None:
    groups = rules_of(tmp_path)
    alerts = groups["otelperf.http.alerts"]
    p95 = [a for a in alerts if a["alert"] == "LatencyP95OverBudget"]
    route, default = p95
    assert route["expr"] == (
        'job_route:http_server_request_duration_seconds:p95_5m{job="shop",http_route="/orders/{order_id}",'
        'http_request_method="GET"} > 0.2'
    )
    assert route["for"] == "1m" and route["labels"] == {
        "severity": "ticket",
        "budget": "p95",
        "route": "GET /orders/{order_id}",
    }
    annotations = route["annotations"]
    assert isinstance(annotations, dict)
    assert (
        "http://127.0.0.1:16686/search?service=shop&operation=GET%20%2Forders%2F%7Border_id%7D"
        in annotations["runbook"]
    )
    assert "> 0.5\nunless on (http_route, http_request_method) otelperf:budget_p95:seconds" in str(
        default["expr"]
    )
    errors = [a for a in alerts if a["alert"] == "ErrorRateOverBudget"]
    assert str(errors[0]["expr"]).endswith("> 0.005")
    p99 = [a for a in alerts if a["alert"] == "LatencyP99OverBudget"]
    assert len(p99) == 1 and str(p99[0]["expr"]).endswith("> 0.4")
    burn = groups["otelperf.slo.alerts"]
    assert [(a["labels"]["severity"], a["labels"]["window"]) for a in burn] == [  # type: ignore[index]
        ("page", "1h/5m"),
        ("page", "6h/30m"),
        ("ticket", "3d/6h"),
    ]
    assert 'ratio_rate1h{job="shop"} > (14.4 * 0.001)' in str(burn[0]["expr"])
    over_max = [
        r
        for r in groups["otelperf.db.recording"]
        if r["record"] == "job:db_client_operations_over_max:increase5m"
    ]
    assert 'le=~"1|1.0"' in str(over_max[0]["expr"])


def test_promtool_accepts_rules_and_alertmanager_config(tmp_path: Path) -> None:
    assert main(["generate", "all", "--budgets", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(tmp_path / "prometheus/rules/otelperf.rules.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    amtool = shutil.which("amtool")
    if amtool:
        am = subprocess.run(
            [amtool, "check-config", str(tmp_path / "alertmanager/alertmanager.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert am.returncode == 0, am.stdout + am.stderr
    board = json.loads((tmp_path / "grafana/dashboards/otelperf-red.json").read_text())
    latency = next(p for p in board["panels"] if p["title"] == "GET /orders/{order_id}: latency")
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 0.2, 0.4]
    assert latency["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "line"}


def test_prometheus_config_is_valid_and_points_at_alertmanager() -> None:
    check = subprocess.run(
        [PROMTOOL, "check", "config", str(REPO / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert '"127.0.0.1:9093"' in (REPO / "prometheus/prometheus.yml").read_text()


UNIT_TESTS = """
rule_files: [otelperf.rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # GET /orders/{order_id}: 60 requests a minute, all between 250 and 500 ms: p95 ~0.49 s > 0.2 s.
      - series: 'http_server_request_duration_seconds_bucket{job="shop",http_route="/orders/{order_id}",http_request_method="GET",http_response_status_code="200",le="0.25"}'
        values: '0x30'
      - series: 'http_server_request_duration_seconds_bucket{job="shop",http_route="/orders/{order_id}",http_request_method="GET",http_response_status_code="200",le="0.5"}'
        values: '0+60x30'
      - series: 'http_server_request_duration_seconds_bucket{job="shop",http_route="/orders/{order_id}",http_request_method="GET",http_response_status_code="200",le="+Inf"}'
        values: '0+60x30'
      - series: 'http_server_request_duration_seconds_count{job="shop",http_route="/orders/{order_id}",http_request_method="GET",http_response_status_code="200"}'
        values: '0+60x30'
    alert_rule_test:
      - eval_time: 10m
        alertname: LatencyP95OverBudget
        exp_alerts:
          - exp_labels: {severity: ticket, budget: p95, route: "GET /orders/{order_id}", job: shop, http_route: "/orders/{order_id}", http_request_method: GET}
  - interval: 1m
    input_series:
      # 10 % of requests fail: burns a 99.9 % SLO's budget 100x too fast.
      - series: 'http_server_request_duration_seconds_count{job="shop",http_route="/x",http_request_method="GET",http_response_status_code="200"}'
        values: '0+90x120'
      - series: 'http_server_request_duration_seconds_count{job="shop",http_route="/x",http_request_method="GET",http_response_status_code="500"}'
        values: '0+10x120'
    alert_rule_test:
      - eval_time: 2m  # over the threshold since 1m, but `for: 2m` not over yet: pending, not firing
        alertname: ErrorBudgetBurn
        exp_alerts: []
      - eval_time: 90m
        alertname: ErrorBudgetBurn
        exp_alerts:
          - exp_labels: {severity: page, window: 1h/5m, slo: "0.999", job: shop}
          - exp_labels: {severity: page, window: 6h/30m, slo: "0.999", job: shop}
          - exp_labels: {severity: ticket, window: 3d/6h, slo: "0.999", job: shop}
"""  # noqa: E501


def test_promtool_unit_tests_fire_p95_and_burn_rate_alerts(tmp_path: Path) -> None:
    # promtool compares annotations verbatim (rendered $value included): test the rules without them;
    # `promtool check rules` above validates the annotation templates.
    doc = build_rules(load_budgets(budgets_file(tmp_path)))
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_dir = tmp_path / "prometheus" / "rules"
    rules_dir.mkdir(parents=True)
    (rules_dir / "otelperf.rules.yml").write_text(_yaml.dump(doc), encoding="utf-8")
    (rules_dir / "tests.yml").write_text(UNIT_TESTS, encoding="utf-8")
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yml"], cwd=rules_dir, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
