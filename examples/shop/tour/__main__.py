"""``make demo``: the example shop under otelperf and load, seen through the real backend.

Steps (a failure names its step and the log to read):

1. backend: ``Stack(with_alertmanager=True).up()`` (collector, Jaeger, Prometheus, Alertmanager on
   loopback; a running stack is reused);
2. app: ``otelperf run ... -- uvicorn examples.shop.app:app`` exporting to the collector, against
   the PostgreSQL and Redis of ``scripts/services.sh`` (``--sqlite``: SQLite, in-process cache), with
   ``OTELPERF_BUDGETS_FILE=examples/shop/otelperf.toml``: the budgets the generated Prometheus
   alerts and the load test's thresholds come from;
3. load: ``otelperf loadtest --scenario mixed`` (Locust) for ``--duration`` seconds, the same budgets
   as thresholds (it prints Locust's summary and the threshold table); without Locust installed,
   ``examples/load.py`` (per-endpoint table, no thresholds);
4. stop the app with SIGINT (uvicorn shuts down, otelperf flushes on exit), then wait until every
   span the collector accepted during the run is stored in Jaeger;
5. print real traces of the run (picked and described from Jaeger's /api/v3) and the PromQL of the
   latency panels with their current values from Prometheus /api/v1/query;
6. what the in-process detectors found: this run's findings ranked by time from Prometheus, as
   ``otelperf report`` ranks them, and for the top N+1 and the top budget finding a trace in
   Jaeger whose span carries it;
7. alerts: polls Prometheus ``/api/v1/alerts`` and Alertmanager ``/api/v2/alerts`` (at most
   ``--alert-wait`` seconds) until an alert of the budgets fires and reaches Alertmanager; prints
   the firing ones and the pending ones with when they fire (the rules' ``for:`` is 1m, so a
   route over budget during the load fires about a minute after its first over-budget scrape);
8. the HTML report of the run (``otelperf report --html``), written to ``.otelperf/demo-report.html``.

The backend keeps running afterwards (``make demo-down`` stops it and the services).

    .venv/bin/python scripts/demo.py [--duration 60] [--users 20] [--port 8000] [--sqlite]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from otelperf import __version__
from otelperf.loadtest import LoadOptions, LoadTestError, run_load
from otelperf.report import RankedFinding, format_ranked, ranked_from_prometheus
from otelperf.stack import Stack, StackError
from otelperf.stack.metrics import sample_name_and_value

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / ".otelperf" / "logs"
APP_LOG = LOG_DIR / "demo-app.log"
SERVICE = "shop"
JAEGER = "http://127.0.0.1:16686"
PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
OTLP_HTTP = "http://127.0.0.1:4318"
COLLECTOR_METRICS = "http://127.0.0.1:8888/metrics"
JAEGER_METRICS = "http://127.0.0.1:14269/metrics"
SERVER_KIND = 2
# One budget for everything: the detectors (OTELPERF_BUDGETS_FILE), the load test's thresholds and
# the Prometheus alerts (prometheus/rules/otelperf.rules.yml is generated from this file).
BUDGETS_FILE = ROOT / "examples" / "shop" / "otelperf.toml"
REPORT_HTML = ROOT / ".otelperf" / "demo-report.html"
FINDING_EVENT = "otelperf.finding"
# Loopback only: an http_proxy from the environment must not see (or break) the backend queries.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StepFailed(Exception):
    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        see = f" (log: {log})" if log else ""
        super().__init__(f"FAILED at step '{step}'{see}:\n{message}")


def say(message: str = "") -> None:
    print(f"[demo] {message}" if message else "", flush=True)


def get_json(url: str, params: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with _OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


# --- 1. backend ---------------------------------------------------------------------------------


def start_backend() -> tuple[Stack, bool]:
    """Returns the stack and whether it was fully running before the demo."""
    stack = Stack(with_alertmanager=True, progress=lambda m: say(f"backend: {m}"))
    try:
        result = stack.up(timeout=90)
    except StackError as exc:
        raise StepFailed("backend (otelperf stack up)", str(exc), stack.state_dir / "logs") from exc
    if result.started:
        say(f"backend: started {', '.join(result.started)} in {result.seconds:.1f} s")
        if result.already_running:
            say(f"backend: already running: {', '.join(result.already_running)}")
    else:
        say(f"backend: already running ({', '.join(result.already_running)}); nothing started")
    say(
        f"backend: Jaeger {JAEGER}, Prometheus {PROMETHEUS}, Alertmanager {ALERTMANAGER}, "
        f"OTLP/HTTP {OTLP_HTTP}"
    )
    say(f"backend: logs in {stack.state_dir / 'logs'} (`otelperf stack logs`)")
    return stack, not result.started


def span_counters() -> tuple[float, float, float]:
    """(spans the collector accepted, sent on to Jaeger, Jaeger stored), from their own metrics."""

    def read(url: str, family: str, label: str = "") -> float:
        with _OPENER.open(url, timeout=2) as response:
            text = response.read().decode(errors="replace")
        total = 0.0
        for line in text.splitlines():
            parsed = sample_name_and_value(line)
            if parsed and parsed[0] in (family, family + "_total") and label in line:
                total += parsed[1]
        return total

    return (
        read(COLLECTOR_METRICS, "otelcol_receiver_accepted_spans"),
        read(COLLECTOR_METRICS, "otelcol_exporter_sent_spans", 'exporter="otlp_grpc/jaeger"'),
        read(JAEGER_METRICS, "otelcol_exporter_sent_spans", 'exporter="jaeger_storage_exporter"'),
    )


# --- 2-4. the app under load --------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def service_env() -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "scripts/services.sh"), "env"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def app_command_and_env(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    base = f"http://127.0.0.1:{args.port}"
    # The user's own OTEL_*/OTELPERF_* settings would change what the demo shows: start clean.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELPERF_", "SHOP_"))}
    env.update(
        OTELPERF_SCHEDULE_DELAY="500ms",
        OTELPERF_METRIC_EXPORT_INTERVAL="2s",
        SHOP_INVENTORY_URL=base + "/internal/stock/{product_id}",
        # A fresh key space per run: the first lookups miss, so there are misses to show.
        SHOP_CACHE_PREFIX=f"demo-{int(time.time())}:",
        OTELPERF_BUDGETS_FILE=str(BUDGETS_FILE),
    )
    if not args.sqlite:
        urls = service_env()
        env["DATABASE_URL"] = urls["OTELPERF_TEST_POSTGRES_URL"].rsplit("/", 1)[0] + "/shop"
        env["REDIS_URL"] = urls["OTELPERF_TEST_REDIS_URL"]
    command = [str(BIN / "otelperf"), "run", "--service-name", SERVICE, "--service-version", __version__]
    command += ["--environment", "demo", "--endpoint", OTLP_HTTP, "--"]
    uvicorn = f"{BIN / 'uvicorn'} examples.shop.app:app --host 127.0.0.1 --port {args.port} --no-access-log"
    return command + uvicorn.split(), env


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            raise StepFailed("app start", f"the app exited with status {proc.returncode}", APP_LOG)
        try:
            with _OPENER.open(url, timeout=1) as response:
                return int(response.status) == 200
        except OSError:
            return False

    if not wait_until(answers, timeout, every=0.25):
        raise StepFailed("app start", f"{url} did not answer within {timeout:.0f} s", APP_LOG)


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    # Own session: signal the whole group, so the uvicorn process under `otelperf run` stops too.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        say(f"WARNING: the app did not stop within 20 s of SIGINT and was killed (log: {APP_LOG})")


def run_app_under_load(args: argparse.Namespace) -> tuple[float, float, int]:
    """(unix time before the app started, after it stopped, load.py's exit status)."""
    command, env = app_command_and_env(args)
    database = env.get("DATABASE_URL", "SQLite (examples/shop.db)")
    say(f"database: {database}; cache: {env.get('REDIS_URL', 'in-process')}")
    say("app: " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)))
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with APP_LOG.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_healthy(base + "/healthz", proc, timeout=90)
        say(f"app answers on {base} (log: {APP_LOG}); load for {args.duration:g} s")
        status = drive_load(args, base)
    finally:
        say("stopping the app (SIGINT: it flushes its telemetry on the way out)")
        stop_app(proc)
    if proc.returncode != 0:
        say(f"WARNING: the app exited with status {proc.returncode} (log: {APP_LOG})")
    if "Traceback" in APP_LOG.read_text(errors="replace"):
        say(f"WARNING: the app logged a traceback (log: {APP_LOG})")
    return started, time.time(), status


def drive_load(args: argparse.Namespace, base: str) -> int:
    """The load: ``otelperf loadtest`` (Locust, budgets as thresholds), else ``examples/load.py``.
    0: every request answered; 1: some failed (the tables say which)."""
    if importlib.util.find_spec("locust") is None:
        say(
            "NOTE: Locust is not installed (`.venv/bin/pip install -e '.[loadtest]'`): no `otelperf "
            "loadtest` and no threshold table; examples/load.py drives the load instead"
        )
        load = [sys.executable, str(ROOT / "examples" / "load.py"), "--base-url", base]
        load += ["--duration", str(args.duration), "--concurrency", str(args.concurrency)]
        status = subprocess.run(load, cwd=ROOT, check=False).returncode
        if status not in (0, 1):  # 1: some requests failed (the table says which); else a crash
            raise StepFailed("load (examples/load.py)", f"exited with status {status}", APP_LOG)
        return status
    options = LoadOptions(
        scenario="mixed",
        duration_s=args.duration,
        users=args.users,
        host=base,
        budgets=str(BUDGETS_FILE),
        otlp_endpoint=OTLP_HTTP,
    )
    budgets = BUDGETS_FILE.relative_to(ROOT)
    say(
        f"load: otelperf loadtest --scenario mixed --duration {args.duration:g}s "
        f"--users {options.users_or_default()} --host {base} --budgets {budgets}"
    )
    try:
        run = run_load(options)
    except LoadTestError as exc:
        raise StepFailed("load (otelperf loadtest)", str(exc)) from exc
    if run.exit_code not in (0, 1):  # 0: thresholds passed, 1: some breached; else Locust failed
        raise StepFailed("load (otelperf loadtest)", f"Locust exited with status {run.exit_code}", APP_LOG)
    breached = [c for c in run.summary.get("checks", []) if not c.get("passed")]
    if breached:
        say(
            f"load: {len(breached)} budget threshold(s) breached, as the client saw them (table above); "
            "the alerts below judge the same budgets from the server's histograms"
        )
    else:
        say("load: every budget threshold passed, as the client saw it")
    # A few failures are the scenario's own races (a browsing user reads an order a CRUD user just
    # deleted: 404) and the error-rate thresholds above judge them; many mean the app is failing.
    total = run.summary.get("total", {})
    failures, requests = int(total.get("failures", 0)), int(total.get("requests", 0))
    if failures:
        say(f"load: {failures} of {requests} requests failed (Locust's error report above)")
    return 1 if failures > 0.1 * requests else 0


def wait_spans_stored(before: tuple[float, float, float], stack: Stack) -> None:
    """Until the run's spans (counter deltas since ``before``) went collector -> Jaeger -> storage,
    so every trace read next is complete (a trace's spans can travel in different batches)."""
    last: tuple[float, ...] = (0.0, 0.0, 0.0)

    def stored() -> bool:
        nonlocal last
        try:
            last = tuple(now - then for now, then in zip(span_counters(), before, strict=True))
        except OSError:
            return False
        return last[0] > 0 and last[0] == last[1] == last[2]

    collector_log = stack.log_path("collector")
    if wait_until(stored, timeout=30):
        say(f"{last[0]:.0f} spans of this run accepted by the collector and stored in Jaeger")
    elif last[0] == 0:
        raise StepFailed("telemetry", "the collector accepted no span from the app", APP_LOG)
    else:
        say(
            f"WARNING: after 30 s, {last[0]:.0f} spans accepted, {last[1]:.0f} sent to Jaeger, "
            f"{last[2]:.0f} stored (logs: {collector_log}, {stack.log_path('jaeger')}); going on"
        )


# --- 5a. traces from Jaeger ---------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attrs: dict[str, Any]
    resource: dict[str, Any]
    events: tuple[tuple[str, dict[str, Any]], ...] = ()  # (name, attributes)

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(v: dict[str, Any]) -> Any:
    if "intValue" in v:
        return int(v["intValue"])  # proto3 JSON writes int64 as a string
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    return v


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or []}


def traces_of(document: dict[str, Any]) -> dict[str, list[Span]]:
    """Jaeger api_v3 OTLP JSON (hex ids) -> spans grouped by trace id."""
    traces: dict[str, list[Span]] = {}
    for rs in document.get("result", {}).get("resourceSpans", []):
        resource = _attrs(rs.get("resource", {}).get("attributes"))
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                span = Span(
                    s["traceId"], s["spanId"], s.get("parentSpanId", ""), s["name"], int(s.get("kind", 0)),
                    int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"]), _attrs(s.get("attributes")),
                    resource, tuple((e["name"], _attrs(e.get("attributes"))) for e in s.get("events", [])),
                )  # fmt: skip
                traces.setdefault(span.trace_id, []).append(span)
    return traces


@dataclass(frozen=True)
class Trace:
    root: Span  # the SERVER span the request started
    spans: list[Span]

    @property
    def db(self) -> list[Span]:
        """SQL and Redis spans, in the order they ran."""
        return sorted((s for s in self.spans if "db.system.name" in s.attrs), key=lambda s: s.start_ns)

    @property
    def data(self) -> list[Span]:
        """SQL, Redis and in-process cache spans, in the order they ran."""
        return sorted(
            (s for s in self.spans if "db.system.name" in s.attrs or "otelperf.cache.name" in s.attrs),
            key=lambda s: s.start_ns,
        )

    @property
    def sql(self) -> list[Span]:
        return [s for s in self.db if s.attrs["db.system.name"] != "redis"]

    @property
    def query(self) -> str:
        q = self.root.attrs.get("url.query", "")
        return f"?{q}" if q else ""


def search(operation: str, start: float, end: float) -> list[Trace]:
    """Every trace of this run whose SERVER span is ``operation`` (Jaeger searches newest first)."""
    params = {
        "query.service_name": SERVICE,
        "query.operation_name": operation,
        "query.start_time_min": _rfc3339(start - 1),
        "query.start_time_max": _rfc3339(end + 1),
        "query.num_traces": "5000",  # api_v3's name for the search depth
    }
    try:
        document = get_json(f"{JAEGER}/api/v3/traces", params, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # "No traces found"
            return []
        raise
    out = []
    for spans in traces_of(document).values():
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if s.kind == SERVER_KIND and s.parent_id not in ids and s.name == operation]
        if roots:
            out.append(Trace(roots[0], spans))
    return out


def _rfc3339(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def median_trace(traces: list[Trace]) -> Trace:
    ordered = sorted(traces, key=lambda t: t.root.ms)
    return ordered[len(ordered) // 2]


def describe_db(trace: Trace) -> str:
    """'1 SELECT orders + 12 SELECT order_items', and the N+1 when one statement repeats."""
    names = Counter(s.name for s in trace.sql)
    if not names:
        return "no SQL"
    parts = " + ".join(f"{n} {name}" for name, n in names.items())
    repeated = Counter(s.attrs.get("db.query.text", s.name) for s in trace.sql).most_common(1)[0][1]
    n_plus_one = f" (N+1: one statement run {repeated} times)" if repeated > 2 else ""
    return f"{parts}{n_plus_one}"


def db_ms(trace: Trace) -> float:
    return sum(s.ms for s in trace.sql)


def describe_cache(trace: Trace) -> str:
    """'GET (miss) -> SELECT products -> SET': the trace's cache and SQL steps in order."""
    steps: list[list[Any]] = []  # [label, repeats]: consecutive repeats folded into one step
    for span in trace.data:
        hit = span.attrs.get("otelperf.cache.hit")
        label = span.name + ("" if hit is None else " (hit)" if hit else " (miss)")
        if steps and steps[-1][0] == label:
            steps[-1][1] += 1
        else:
            steps.append([label, 1])
    return " -> ".join(f"{n} x {label}" if n > 1 else label for label, n in steps) or "no SQL, no Redis"


def summary(trace: Trace) -> str:
    """'GET /orders?customer_id=7: 1 SELECT orders + 12 SELECT order_items (...), 80.1 ms (61.0 in SQL)'"""
    root = trace.root
    path = f"{root.attrs.get('http.request.method', '')} {root.attrs.get('url.path', '')}{trace.query}"
    share = 100 * db_ms(trace) / root.ms if root.ms else 0.0
    return f"{path}: {describe_db(trace)}, {root.ms:.1f} ms ({db_ms(trace):.1f} ms = {share:.0f}% in SQL)"


def show_trace(line: str, trace: Trace) -> None:
    tid = trace.root.trace_id
    print(f"   {line}\n     UI  {JAEGER}/trace/{tid}\n     API {JAEGER}/api/v3/traces/{tid}")


def cache_hit(trace: Trace) -> bool | None:
    """The first cache lookup's otelperf.cache.hit; None when the trace has no cache span."""
    flags = (s.attrs["otelperf.cache.hit"] for s in trace.data if "otelperf.cache.hit" in s.attrs)
    return next(flags, None)


def where_to_look(start: float, end: float) -> str | None:
    """Prints the traces; returns this run's service.instance.id (None when nothing was found)."""
    say()
    print("== Where to look: traces of this run in Jaeger ==")
    print(
        "(This Jaeger is a module build: its UI page is a placeholder, the API is complete; the "
        "docker-compose setup has the full UI.)"
    )
    n1, eager = search("GET /orders", start, end), search("GET /orders-eager", start, end)
    reports = search("GET /reports/search", start, end)
    prices = search("GET /products/{product_id}/price", start, end)
    everything = n1 + eager + reports + prices
    if not everything:
        window = f"{_rfc3339(start)} .. {_rfc3339(end)}"
        raise StepFailed("Jaeger search", f"no trace of service {SERVICE!r} in {window}", APP_LOG)

    slow = max(n1, key=lambda t: t.root.ms) if n1 else None
    if slow:
        print(f"\n1. The slowest GET /orders of {len(n1)}: the N+1 list")
        show_trace(summary(slow), slow)
    if eager:
        same = [t for t in eager if slow and t.query == slow.query]
        pick = max(same, key=lambda t: t.root.ms) if same else median_trace(eager)
        why = "the same customer" if same else "a typical one"
        print(f"\n2. GET /orders-eager, {why}, for comparison (same data, items by selectinload)")
        show_trace(summary(pick), pick)
        if n1:
            a, b = median_trace(n1), median_trace(eager)
            print(
                f"   median of all: GET /orders {a.root.ms:.1f} ms with {len(a.sql)} SQL statements, "
                f"GET /orders-eager {b.root.ms:.1f} ms with {len(b.sql)}"
            )
    if reports:
        worst = max(reports, key=lambda t: t.root.ms)
        print(f"\n3. The slowest GET /reports/search of {len(reports)} (LIKE '%q%' scans every order)")
        show_trace(summary(worst), worst)
        print(f"   median of all: {median_trace(reports).root.ms:.1f} ms")
    if prices:
        if any(cache_hit(t) is not None for t in prices):
            hits = [t for t in prices if cache_hit(t) is True]
            misses = [t for t in prices if cache_hit(t) is False]
            how = "by the cache span's otelperf.cache.hit"
        else:  # --sqlite: the in-process cache has no spans under `otelperf run`; SQL means a miss
            hits, misses = [t for t in prices if not t.sql], [t for t in prices if t.sql]
            how = "in-process cache, no cache spans: no SQL means a hit"
        ratio = 100 * len(hits) / len(prices)
        print(f"\n4. GET /products/{{product_id}}/price: a typical cache hit vs miss ({how})")
        print(f"   {len(prices)} lookups: {len(hits)} hits, {len(misses)} misses ({ratio:.0f}% hits)")
        for label, group in (("hit: ", hits), ("miss:", misses)):
            if group:
                t = median_trace(group)
                path = t.root.attrs.get("url.path", "")
                show_trace(f"{label} {path}: {describe_cache(t)}, {t.root.ms:.1f} ms", t)
    return str(everything[0].root.resource.get("service.instance.id", "")) or None


# --- 5b. PromQL from Prometheus -----------------------------------------------------------------

P95_ROUTE = (
    "histogram_quantile(0.95, sum by (le, http_request_method, http_route) "
    '(increase(http_server_request_duration_seconds_bucket{job="shop"}[5m])))'
)
REQUESTS_ROUTE = (
    "sum by (http_request_method, http_route) "
    '(increase(http_server_request_duration_seconds_count{job="shop"}[5m]))'
)
DB_TIME = (
    "sum by (db_system_name, db_operation_name) "
    '(increase(db_client_operation_duration_seconds_sum{job="shop"}[5m]))'
)
DB_P95 = (
    "histogram_quantile(0.95, sum by (le, db_system_name, db_operation_name) "
    '(increase(db_client_operation_duration_seconds_bucket{job="shop"}[5m])))'
)
CACHE_RATIO = 'otelperf_cache_hit_ratio{job="shop"}'


def prom(expr: str) -> list[tuple[dict[str, str], float]]:
    body = get_json(f"{PROMETHEUS}/api/v1/query", {"query": expr})
    return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]


def graph_link(expr: str) -> str:
    return f"{PROMETHEUS}/graph?g0.expr={urllib.parse.quote(expr, safe='')}&g0.tab=0&g0.range_input=15m"


def wait_scraped(after: float) -> None:
    """The app's last metric export reached the collector before it exited; wait for the first
    Prometheus scrape of the collector's exporter after that (scrape interval 5 s; batch 1 s)."""

    def scraped() -> bool:
        try:
            result = prom('timestamp(up{job="otelcol-exporter"})')
        except OSError:
            return False
        return bool(result) and result[0][1] > after + 1.5

    if not wait_until(scraped, timeout=20):
        say("WARNING: Prometheus has not scraped the collector since the app stopped; values may lag")


def show(title: str, expr: str, row: Callable[[dict[str, str], float], str]) -> None:
    print(f"\n{title}\n   {expr}\n   {graph_link(expr)}")
    try:
        result = prom(expr)
    except (OSError, KeyError, ValueError) as exc:
        print(f"   (query failed: {exc}; Prometheus log: see `otelperf stack logs prometheus`)")
        return
    if not result:
        print("   (no series)")
    for labels, value in sorted(result, key=lambda r: sorted(r[0].items())):
        print("   " + row(labels, value))


def _ms(value: float) -> str:
    return "      -" if math.isnan(value) else f"{value * 1000:7.1f} ms"  # NaN: no request in the window


def _route(labels: dict[str, str]) -> str:
    return f"{labels.get('http_request_method', '?')} {labels.get('http_route', '?')}"


def latency_panels(instance: str | None, end: float) -> None:
    wait_scraped(end)
    say()
    print(f"== Latency panels: PromQL, and the values now (Prometheus {PROMETHEUS}) ==")
    print(
        "(increase over 5 min, extrapolated by Prometheus: this run and any shop process of the last minutes)"
    )
    show("p95 per route", P95_ROUTE, lambda m, v: f"{_route(m):<40} p95 {_ms(v)}")
    show("requests per route", REQUESTS_ROUTE, lambda m, v: f"{_route(m):<40} {v:8.0f}")
    show(
        "DB time per operation (seconds spent, summed over requests)",
        DB_TIME,
        lambda m, v: f"{m.get('db_system_name', '?'):<11} {m.get('db_operation_name', '?'):<8} {v:8.2f} s",
    )
    show(
        "p95 per DB operation",
        DB_P95,
        lambda m, v: f"{m.get('db_system_name', '?'):<11} {m.get('db_operation_name', '?'):<8} p95 {_ms(v)}",
    )

    def ratio(m: dict[str, str], v: float) -> str:
        mine = " (this run)" if instance and m.get("service_instance_id") == instance else ""
        name, instance_id = m.get("otelperf_cache_name", "?"), m.get("service_instance_id", "?")
        return f"{name:<11} {v:6.1%}  instance {instance_id}{mine}"

    show("cache hit ratio (since each process started)", CACHE_RATIO, ratio)


# --- 6. what the detectors found ----------------------------------------------------------------


def finding_example(
    row: RankedFinding, start: float, end: float
) -> tuple[Trace, Span, dict[str, Any]] | None:
    """The trace of this run where ``row``'s finding cost the most: (trace, the span the finding
    is on, the finding event's attributes); None when Jaeger has no trace carrying it."""
    best: tuple[Trace, Span, dict[str, Any]] | None = None
    for trace in search(row.route, start, end):
        for span in trace.spans:
            for name, attrs in span.events:
                if (
                    name == FINDING_EVENT
                    and attrs.get("otelperf.finding.detector") == row.detector
                    and attrs.get("otelperf.finding.fingerprint") == row.fingerprint
                    and (best is None or _event_ms(attrs) > _event_ms(best[2]))
                ):
                    best = (trace, span, attrs)
    return best


def _event_ms(attrs: dict[str, Any]) -> float:
    return float(attrs.get("otelperf.finding.duration_ms", 0.0))


def what_detectors_found(instance: str | None, start: float, end: float) -> None:
    say()
    print("== What the detectors found ==")
    print(
        f"(the app ran with OTELPERF_BUDGETS_FILE={BUDGETS_FILE.relative_to(ROOT)}: its per-route p95 "
        "budgets; N+1 and slow-query thresholds are the defaults: OTELPERF_N_PLUS_ONE_MIN_MS=50, "
        "OTELPERF_SLOW_QUERY_MS=100)"
    )
    # A window from just before the app started to now: this run, and nothing older.
    window = f"{math.ceil(time.time() - start) + 5}s"
    matchers = f'job="{SERVICE}"' + (f',service_instance_id="{instance}"' if instance else "")
    rows = ranked_from_prometheus(PROMETHEUS, window, matchers=matchers)
    print(f"\nThis run's findings, most time-consuming first (Prometheus, {{{matchers}}}, last {window}):")
    if not rows:
        print("   none: no request of this run produced a finding")
    else:
        print("\n".join("   " + line for line in format_ranked(rows, limit=10).splitlines()))
    for detector, title in (("n_plus_one", "N+1"), ("latency_budget", "budget")):
        top = next((r for r in rows if r.detector == detector), None)
        if top is None:
            if rows:
                print(f"\nThe top {title} finding: none in this run")
            continue
        print(f"\nThe top {title} finding: {top.route}: {top.statement[:100]}")
        example = finding_example(top, start, end)
        if example is None:
            print(f"   (no trace of this run in Jaeger carries it: searched {top.route!r})")
            continue
        trace, span, attrs = example
        count = int(attrs.get("otelperf.finding.count", 0))
        print(
            f"   the costliest occurrence: {count} x, {_event_ms(attrs):.1f} ms, "
            f"on span {span.name!r} ({span.span_id}, {span.ms:.1f} ms)"
        )
        print(f"   hint: {attrs.get('otelperf.finding.hint', '')}")
        tid = trace.root.trace_id
        print(f"     UI  {JAEGER}/trace/{tid}\n     API {JAEGER}/api/v3/traces/{tid}")
    print(
        f"\nRerun the ranking (every service, from Prometheus): "
        f"{BIN / 'otelperf'} report --prometheus {PROMETHEUS} --window 15m"
    )


# --- 7. alerts: Prometheus -> Alertmanager -------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    name: str
    state: str  # "firing" | "pending" (Prometheus); pending alerts never reach Alertmanager
    labels: dict[str, str]
    summary: str
    active_since: float  # unix seconds: the first evaluation that found the condition true
    fires_at: float | None  # active_since + the rule's `for:` (firing: when it fired)
    value: float  # the rule expression's value (p95 seconds, ratio, count, ...)

    @property
    def route(self) -> str:
        if "http_route" in self.labels:
            return f"{self.labels.get('http_request_method', '')} {self.labels['http_route']}".strip()
        return self.labels.get("route", "")


def _unix(rfc3339: str) -> float:
    # Prometheus and Alertmanager write nanoseconds; datetime takes at most microseconds.
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp()
    return stamp + (float("0." + frac.split("+")[0]) if frac else 0.0)


def _rule_durations() -> dict[frozenset[tuple[str, str]], float]:
    """Each active alert's `for:` in seconds, by its labels (/api/v1/alerts does not say it)."""
    body = get_json(f"{PROMETHEUS}/api/v1/rules", {"type": "alert"})
    return {
        frozenset(alert["labels"].items()): float(rule.get("duration", 0))
        for group in body["data"]["groups"]
        for rule in group["rules"]
        for alert in rule.get("alerts", [])
    }


def prometheus_alerts() -> list[Alert]:
    raw = get_json(f"{PROMETHEUS}/api/v1/alerts")["data"]["alerts"]
    durations = _rule_durations() if raw else {}
    out = []
    for a in raw:
        labels = dict(a["labels"])
        since = _unix(a["activeAt"])
        duration = durations.get(frozenset(labels.items()))
        fires_at = since + duration if duration is not None else None
        summary = a.get("annotations", {}).get("summary", "")
        value = float(a.get("value", "nan"))
        out.append(Alert(labels["alertname"], a["state"], labels, summary, since, fires_at, value))
    return sorted(out, key=lambda a: (a.state != "firing", a.name == "SlowQueries", a.name, a.route))


def alertmanager_alerts() -> list[dict[str, str]]:
    """The label sets of the alerts Alertmanager holds (active or silenced/inhibited)."""
    return [dict(a["labels"]) for a in get_json(f"{ALERTMANAGER}/api/v2/alerts")]


def delivered(alert: Alert, received: list[dict[str, str]]) -> bool:
    # Alertmanager's copy carries Prometheus' labels (plus any external labels).
    return any(alert.labels.items() <= labels.items() for labels in received)


def _clock(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))


def show_alerts(wait_s: float, run_start: float) -> bool:
    """Polls until the alerts settle (an alert fired and is in Alertmanager, and no pending one
    fires before the deadline) or ``wait_s`` passed; prints them grouped by rule.
    True when one fired and reached Alertmanager."""
    say()
    print("== Alerts: the budgets' Prometheus rules, delivered to Alertmanager ==")
    print(
        f"(prometheus/rules/otelperf.rules.yml, generated from {BUDGETS_FILE.relative_to(ROOT)}: "
        "p95/p99/error rate per route, throughput floor, DB, cache, SLO burn. `for: 1m`: a breach "
        "fires after holding a minute; SlowQueries fires at once)"
    )
    deadline = time.time() + wait_s
    next_note = 0.0
    alerts: list[Alert] = []
    received: list[dict[str, str]] = []
    while True:
        try:
            alerts, received = prometheus_alerts(), alertmanager_alerts()
        except (OSError, KeyError, ValueError) as exc:
            say(f"alerts: query failed ({type(exc).__name__}: {exc}); retrying")
        firing = [a for a in alerts if a.state == "firing"]
        # Pending alerts that will fire before the deadline are worth the wait: they are the
        # budget breaches of this run (a firing alert reaches Alertmanager at the next evaluation).
        coming = [a for a in alerts if a.state == "pending" and (a.fires_at or deadline + 1) <= deadline]
        settled = bool(firing) and not coming and all(delivered(a, received) for a in firing)
        if settled or time.time() >= deadline:
            break
        if time.time() >= next_note:
            soonest = f"; the next fires at {_clock(min(a.fires_at or 0 for a in coming))}" if coming else ""
            say(
                f"alerts: {len(firing)} firing, {len(alerts) - len(firing)} pending{soonest}; "
                f"{len(received)} in Alertmanager (waiting at most {deadline - time.time():.0f} s more)"
            )
            next_note = time.time() + 10
        time.sleep(2)
    now = time.time()
    firing = [a for a in alerts if a.state == "firing"]
    print(
        f"\nPrometheus {PROMETHEUS}/api/v1/alerts at {_clock(now)}: {len(firing)} firing, "
        f"{len(alerts) - len(firing)} pending"
    )
    groups: dict[tuple[str, str], list[Alert]] = {}
    for a in alerts:
        groups.setdefault((a.state, a.name), []).append(a)
    for (state, name), members in groups.items():
        if state == "firing":
            since = min(a.fires_at or a.active_since for a in members)
            n_in = sum(delivered(a, received) for a in members)
            what = f"FIRING   since {_clock(since)}, {n_in} of {len(members)} in Alertmanager"
            if min(a.active_since for a in members) < run_start:
                what += " (some active before this run: an earlier shop run is in the 5m window)"
        else:
            first = min((a.fires_at for a in members if a.fires_at), default=None)
            when = f", the first at {_clock(first)} (in {max(0.0, first - now):.0f} s)" if first else ""
            what = f"pending  (fires if it holds for the rule's `for:`{when})"
        print(f"   {name} x {len(members)}: {what}")
        for a in sorted(members, key=lambda a: -a.value)[:3]:
            summary = a.summary if len(a.summary) <= 100 else a.summary[:99] + "…"
            print(f"      {summary}")
        if len(members) > 3:
            print(f"      ... and {len(members) - 3} more")
    if not alerts:
        print("   none firing or pending")
    names = Counter(labels.get("alertname", "?") for labels in received)
    listed = ": " + ", ".join(f"{n} {name}" for name, n in names.most_common()) if names else ""
    print(f"\nAlertmanager {ALERTMANAGER}/api/v2/alerts: {len(received)} alert(s){listed}")
    ok = any(delivered(a, received) for a in firing)
    if not ok:
        print(
            f"   no alert reached Alertmanager within {wait_s:.0f} s; the pending ones fire if their "
            "condition holds for the rule's `for:` (look again with the commands below)"
        )
    print(f"   curl -s {PROMETHEUS}/api/v1/alerts\n   curl -s {ALERTMANAGER}/api/v2/alerts")
    print(f"   UI: {PROMETHEUS}/alerts  {ALERTMANAGER}/#/alerts")
    return ok


# --- 8. the HTML report -------------------------------------------------------------------------


def write_html_report(start: float) -> None:
    say()
    command = [str(BIN / "otelperf"), "report", "--html", str(REPORT_HTML), "--prometheus", PROMETHEUS]
    command += ["--budgets", str(BUDGETS_FILE), "--start", f"{start:.0f}", "--end", f"{time.time():.0f}"]
    print("== HTML report of the run ==")
    print("   " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)))
    REPORT_HTML.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).strip().splitlines():
        print("   " + line)
    if result.returncode == 0:
        print(f"   open it: file://{REPORT_HTML}")
    else:
        say(f"WARNING: `otelperf report --html` exited with status {result.returncode}")


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, help="Locust users (default: the mixed scenario's, 20)")
    parser.add_argument(
        "--alert-wait", type=float, default=60.0, help="seconds to wait for an alert to fire (default 60)"
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("SHOP_PORT", "8000")))
    parser.add_argument("--concurrency", type=int, default=8, help="examples/load.py workers (no Locust)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite and the in-process cache (no services)")
    args = parser.parse_args()
    try:
        if not port_free(args.port):
            raise StepFailed("app start", f"port {args.port} is in use: pass --port or set SHOP_PORT")
        stack, was_running = start_backend()
        try:
            before = span_counters()
        except OSError as exc:
            raise StepFailed(
                "backend", f"cannot read the span counters: {exc}", stack.state_dir / "logs"
            ) from exc
        started, ended, load_status = run_app_under_load(args)
        wait_spans_stored(before, stack)
        try:
            instance = where_to_look(started, ended)
        except (OSError, KeyError, ValueError) as exc:
            raise StepFailed(
                "Jaeger query", f"{type(exc).__name__}: {exc}", stack.log_path("jaeger")
            ) from exc
        latency_panels(instance, ended)
        try:
            what_detectors_found(instance, started, ended)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise StepFailed(
                "detector findings", f"{type(exc).__name__}: {exc}", stack.state_dir / "logs"
            ) from exc
        show_alerts(args.alert_wait, started)
        write_html_report(started)
    except StepFailed as exc:
        say(str(exc))
        say("The backend (if it started) keeps running: `make demo-down` stops it.")
        return 1
    except KeyboardInterrupt:
        say("interrupted; the backend (if it started) keeps running: `make demo-down` stops it.")
        return 130
    say()
    telemetry = stack.status().telemetry
    if telemetry is not None:
        print(f"Collector: {telemetry.describe()}.")
    before_note = "It was already running before the demo. " if was_running else ""
    print(f"{before_note}The backend keeps running: `make demo-down` stops it.")
    if load_status:
        say(f"exit status 1: requests of the load failed (the tables above; log: {APP_LOG})")
    return 0 if load_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
