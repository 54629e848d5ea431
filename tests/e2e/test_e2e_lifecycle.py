"""End to end: version 2.0 of the shop brings a new N+1. `otelperf report` says NEW (and KNOWN for
the N+1 version 1.0 already had), the generated NewFindingInVersion alert fires in a real Prometheus,
and `otelperf baseline compare` against version 1.0's baseline fails on it.

Version 1.0 and 2.0 are the same code; 2.0 runs with the shop's test hook ``SHOP_INJECT_N_PLUS_ONE=1``
(``GET /orders/{order_id}`` then looks up each item's product one query at a time). Both run under
``otelperf run --service-version``. The rules come from ``otelperf generate rules`` and are evaluated
by a Prometheus of this test's own (1 s scrapes of the running collector, 1 s evaluation); the
shared stack's collector and Jaeger are used, nothing shared is reconfigured.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.e2e._backend import StackUrls, poll
from tests.e2e._shop import ROOT, free_port, fresh_database, run_otelperf, shop_env, start_shop
from tests.e2e.test_e2e_alerts import COLLECTOR_EXPORTER, PROMETHEUS_BIN, Daemon, _binary, running_daemon

from otelperf.backends import Prometheus

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SERVICE = f"shop-e2e-lifecycle-{uuid.uuid4().hex[:6]}"
KNOWN_ROUTE = "GET /orders"  # the shop's N+1 on purpose, in both versions
NEW_ROUTE = "GET /orders/{order_id}"  # an N+1 in 2.0 only
# The seed is small: a loop of 2+ statements of any duration is an N+1 here.
DETECTOR_ENV = {"OTELPERF_N_PLUS_ONE_MIN_COUNT": "2", "OTELPERF_N_PLUS_ONE_MIN_MS": "0"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("lifecycle-rules")
    budgets = home / "otelperf.toml"
    budgets.write_text(f'service = "{SERVICE}"\n[defaults]\np95 = "9s"\nmin_rps = 0\n', encoding="utf-8")
    result = run_otelperf("generate", "rules", "--budgets", str(budgets), "--out", str(home))
    assert result.returncode == 0, result.stdout + result.stderr
    return home / "prometheus/rules/otelperf.rules.yml"


@pytest.fixture(scope="module")
def prometheus(
    stack: StackUrls, generated: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    del stack  # the collector must be up
    home = tmp_path_factory.mktemp("lifecycle-prometheus")
    port = free_port()
    (home / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        f'rule_files:\n  - "{generated}"\n'
        "scrape_configs:\n  - job_name: otelcol-exporter\n    honor_labels: true\n"
        f'    static_configs:\n      - targets: ["{COLLECTOR_EXPORTER}"]\n',
        encoding="utf-8",
    )
    cmd = [
        _binary(PROMETHEUS_BIN),
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running_daemon("prometheus", cmd, port, home / "prometheus.log") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "shop_lc") as url:
        yield url


def _env(database: str, redis_url: str, port: int, **extra: str) -> dict[str, str]:
    # This checkout's otelperf in the shop's process (shop_env sets PYTHONPATH to the checkout root).
    return shop_env(
        postgres_url=database,
        redis_url=redis_url,
        cache_prefix=f"lc-{uuid.uuid4().hex[:8]}:",
        inventory_port=port,
        PYTHONPATH=f"{ROOT / 'src'}:{ROOT}",
        OTELPERF_BUDGETS_FILE="none",
        **DETECTOR_ENV,
        **extra,
    )


def _findings(prom: Daemon, version: str) -> list[Any]:
    return Prometheus(prom.url, timeout=5.0).query(
        f'otelperf_findings_total{{job="{SERVICE}",detector="n_plus_one",service_version="{version}"}}'
    )


def _run_version(
    version: str, database: str, redis_url: str, prom: Daemon, routes: set[str], **extra: str
) -> tuple[float, float]:
    """Run the shop as ``version``, send the requests, wait until its N+1 findings on ``routes``
    are in Prometheus, stop it (flushing). Returns (start, end) of the run, unix seconds."""
    port = free_port()
    started = time.time()
    options = ["--service-version", version]
    with start_shop(
        service=SERVICE, env=_env(database, redis_url, port, **extra), port=port, run_options=options
    ) as shop:
        with psycopg.connect(database) as conn:  # seeded by the app: pick data from the source
            customer = conn.execute(
                "SELECT customer_id FROM orders GROUP BY customer_id HAVING count(*) >= 3 ORDER BY 1 LIMIT 1"
            ).fetchone()
            order = conn.execute(
                "SELECT order_id FROM order_items GROUP BY order_id HAVING count(DISTINCT product_id) >= 3 "
                "ORDER BY 1 LIMIT 1"
            ).fetchone()
        assert customer is not None and order is not None, "the seed has no suitable orders"
        with httpx.Client(base_url=shop.url, timeout=10.0) as client:
            for _ in range(3):
                assert client.get("/orders", params={"customer_id": customer[0]}).status_code == 200
                assert client.get(f"/orders/{order[0]}").status_code == 200
        poll(
            f"{version}'s N+1 findings on {sorted(routes)} in Prometheus",
            lambda: _findings(prom, version),
            lambda rows: {r.labels.get("route") for r in rows} == routes,
            timeout=30,
        )
    assert shop.returncode == 0, shop.output
    assert "Traceback" not in shop.output, shop.output
    return started, time.time()


def test_a_new_n_plus_one_in_version_2_is_new_alerts_and_fails_the_baseline(
    prometheus: Daemon, database: str, redis_url: str, tmp_path: Path
) -> None:
    # Version 1.0: only the known N+1. Its baseline reads its run from our Prometheus.
    start_1, _ = _run_version("1.0", database, redis_url, prometheus, {KNOWN_ROUTE})
    baseline = tmp_path / "baseline.json"
    window_1 = f"{int(time.time() - start_1) + 1}s"
    record = run_otelperf(
        *("baseline", "record", "--out", str(baseline), "--service", SERVICE),
        *("--prometheus", prometheus.url, "--window", window_1),
    )
    assert record.returncode == 0, record.stdout + record.stderr
    recorded = json.loads(baseline.read_text())["findings"]
    assert {(f["detector"], f["route"]) for f in recorded} == {("n_plus_one", KNOWN_ROUTE)}, recorded

    # Version 2.0: the known N+1 and a new one.
    start_2, _ = _run_version(
        "2.0", database, redis_url, prometheus, {KNOWN_ROUTE, NEW_ROUTE}, SHOP_INJECT_N_PLUS_ONE="1"
    )

    # The alert fires in Prometheus for the new fingerprint only.
    alerts = poll(
        f"NewFindingInVersion firing for {NEW_ROUTE} in {prometheus.url}",
        Prometheus(prometheus.url, timeout=5.0).alerts,
        lambda found: any(
            a.labels.get("alertname") == "NewFindingInVersion" and a.state == "firing" for a in found
        ),
        timeout=30,
    )
    new = [a for a in alerts if a.labels.get("alertname") == "NewFindingInVersion"]
    assert {(a.labels["job"], a.labels["route"], a.labels["service_version"]) for a in new} == {
        (SERVICE, NEW_ROUTE, "2.0")
    }, new
    assert "SELECT products" in new[0].labels["statement"]

    # otelperf report: the newest version's findings, NEW and KNOWN.
    report = run_otelperf("report", "--prometheus", prometheus.url, "--service", SERVICE, "--window", "10m")
    assert report.returncode == 0, report.stdout + report.stderr
    lines = report.stdout.splitlines()
    new_line = next(line for line in lines if NEW_ROUTE in line)
    known_line = next(line for line in lines if f" {KNOWN_ROUTE} " in line)
    assert " NEW " in new_line and "n_plus_one" in new_line, report.stdout
    assert " KNOWN " in known_line, report.stdout
    assert "version 2.0" in report.stdout

    # otelperf baseline compare of version 2.0's run against 1.0's baseline: exit 1 on the new N+1.
    window_2 = f"{int(time.time() - start_2) + 1}s"
    compare = run_otelperf(
        *("baseline", "compare", "--baseline", str(baseline), "--service", SERVICE),
        *("--prometheus", prometheus.url, "--window", window_2),
    )
    assert compare.returncode == 1, compare.stdout + compare.stderr
    assert f"NEW n_plus_one on {NEW_ROUTE}: SELECT" in compare.stdout, compare.stdout
    assert f"NEW n_plus_one on {KNOWN_ROUTE}:" not in compare.stdout, compare.stdout
