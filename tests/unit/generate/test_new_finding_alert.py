"""The generated NewFindingInVersion alert, evaluated by promtool on series of two versions (the real
Prometheus: tests/e2e/test_e2e_lifecycle.py), and expected findings out of every findings alert."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.unit.generate.test_generate import PROMTOOL, budgets_file, rules_of

from otelperf.budgets import load_budgets
from otelperf.generate import _yaml
from otelperf.generate.rules import build_rules

F = 'otelperf_findings_total{job="shop",detector="n_plus_one",severity="warning",route="GET /orders"'
UNIT_TESTS = f"""
rule_files: [otelperf.rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # 1.0 ran for 30 minutes with N+1 "a", then stopped; 2.0 has "a" and a new "b"; "c" is new
      # in 2.0 but marked expected; "d" is new in 2.0 and stopped 20 minutes ago.
      - series: '{F},fingerprint="a",statement="SELECT a",service_version="1.0"}}'
        values: '1+1x30'
      - series: '{F},fingerprint="a",statement="SELECT a",service_version="2.0"}}'
        values: '_x30 1+1x30'
      - series: '{F},fingerprint="b",statement="SELECT b",service_version="2.0"}}'
        values: '_x30 1+1x30'
      - series: '{F},fingerprint="c",statement="SELECT c",service_version="2.0",expected="true"}}'
        values: '_x30 1+1x30'
      - series: '{F},fingerprint="d",statement="SELECT d",service_version="2.0"}}'
        values: '_x30 1+1x10'
    alert_rule_test:
      - eval_time: 20m  # one version so far: nothing is new yet
        alertname: NewFindingInVersion
        exp_alerts: []
      - eval_time: 55m
        alertname: NewFindingInVersion
        exp_alerts:
          - exp_labels: {{severity: ticket, finding: new, job: shop, detector: n_plus_one, route: "GET /orders", fingerprint: b, statement: "SELECT b", service_version: "2.0"}}
  - interval: 1m
    input_series:
      # 1.0 served requests without any finding; 2.0 brings "e": new (versions known from requests).
      - series: 'http_server_request_duration_seconds_count{{job="shop",http_route="/orders",service_version="1.0"}}'
        values: '0+10x30'
      - series: '{F},fingerprint="e",statement="SELECT e",service_version="2.0"}}'
        values: '_x30 1+1x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: NewFindingInVersion
        exp_alerts: []
      - eval_time: 45m
        alertname: NewFindingInVersion
        exp_alerts:
          - exp_labels: {{severity: ticket, finding: new, job: shop, detector: n_plus_one, route: "GET /orders", fingerprint: e, statement: "SELECT e", service_version: "2.0"}}
  - interval: 1m
    input_series:
      # No version on the findings (service.version not set): the alert stays silent.
      - series: '{F},fingerprint="a",statement="SELECT a"}}'
        values: '1+1x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: NewFindingInVersion
        exp_alerts: []
  - interval: 1m
    input_series:
      # A slow query marked expected never fires SlowQueries; an unexpected one does.
      - series: 'otelperf_findings_total{{job="shop",detector="slow_query",severity="warning",route="GET /r",fingerprint="s",statement="SELECT s",expected="true"}}'
        values: '0+1x10'
      - series: 'otelperf_findings_total{{job="shop",detector="slow_query",severity="warning",route="GET /r",fingerprint="t",statement="SELECT t"}}'
        values: '0+1x10'
    alert_rule_test:
      - eval_time: 8m
        alertname: SlowQueries
        exp_alerts:
          - exp_labels: {{severity: ticket, budget: db, job: shop, route: "GET /r", fingerprint: t, statement: "SELECT t"}}
"""  # noqa: E501


def test_promtool_fires_new_finding_only_for_the_new_unexpected_fingerprint(tmp_path: Path) -> None:
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


def test_every_findings_alert_leaves_expected_findings_out(tmp_path: Path) -> None:
    exprs = [str(r["expr"]) for rules in rules_of(tmp_path).values() for r in rules if "alert" in r]
    findings = [e for e in exprs if "otelperf_findings_total{" in e]
    assert len(findings) == 2
    for expr in findings:
        first = expr.split("otelperf_findings_total{", 1)[1].split("}", 1)[0]
        assert 'expected!="true"' in first, expr
