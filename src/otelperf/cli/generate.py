"""``otelperf generate rules|alertmanager|dashboards|all``: monitoring configuration from the budgets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from otelperf.budgets import BudgetError, load_budgets
from otelperf.generate import KINDS, generate


def cmd_generate(args: Any) -> int:
    try:
        budgets = load_budgets(args.budgets)
    except BudgetError as exc:
        print(f"otelperf generate: {exc}", file=sys.stderr)
        return 1
    kinds = KINDS if args.kind == "all" else (args.kind,)
    out = Path(args.out)
    for path in generate(budgets, kinds, out, jaeger_url=args.jaeger_url, webhook_url=args.webhook_url):
        print(f"wrote {path}")
    if "rules" in kinds:
        print("Prometheus reads new rules on reload: curl -X POST http://127.0.0.1:9090/-/reload")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``otelperf generate rules|alertmanager|dashboards|all`` on the CLI's subparsers."""
    gen = sub.add_parser(
        "generate",
        help="Prometheus rules, Alertmanager config, Grafana dashboards from the budgets file",
        description="Generate monitoring configuration from the budgets (otelperf.toml / [tool.otelperf]).",
    )
    gen.add_argument("kind", choices=[*KINDS, "all"])
    gen.add_argument("--budgets", metavar="FILE", help="budgets file (default: found from the cwd upwards)")
    gen.add_argument(
        "--out", default=".", help="directory that gets prometheus/, alertmanager/, grafana/ (default: .)"
    )
    gen.add_argument(
        "--jaeger-url", default="http://127.0.0.1:16686", help="Jaeger UI base URL for alert links"
    )
    gen.add_argument("--webhook-url", help="Alertmanager receivers post here (default: notify nobody)")
    gen.set_defaults(func=cmd_generate)
