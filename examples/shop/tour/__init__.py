"""The shop's tour (``make demo``): the example shop under otelperf and load, seen through the real
backend with :mod:`otelperf.backends`.

Steps (a failure names its step and the log to read):

1. backend (``backend``): ``Stack(with_alertmanager=True).up()`` (collector, Jaeger, Prometheus,
   Alertmanager on loopback; a running stack is reused);
2. app (``app``): ``otelperf run ... -- uvicorn examples.shop.app:app`` exporting to the collector,
   against the PostgreSQL and Redis of ``scripts/services.sh`` (``--sqlite``: SQLite, in-process
   cache), with ``OTELPERF_BUDGETS_FILE=examples/shop/otelperf.toml``: the budgets the generated
   Prometheus alerts and the load test's thresholds come from;
3. load (``app``): ``otelperf loadtest --scenario mixed`` (Locust) for ``--duration`` seconds, the
   same budgets as thresholds; without Locust installed, ``examples/load.py`` (no thresholds);
   then two CPU-bound ``GET /reports/discounts`` (all Python, ``examples.shop.pricing``), over
   their budget: the example of where the profiler says "app" time went;
4. stop the app with SIGINT (it flushes on exit), then wait until every span the collector
   accepted during the run is stored in Jaeger (``backend``);
5. where to look: real traces of the run, picked and described from Jaeger (``traces``), and the
   PromQL of the latency panels with their current values from Prometheus (``metrics``);
6. what the in-process detectors found (``findings``): this run's findings ranked by time from
   Prometheus, as ``otelperf report`` ranks them, and for the top N+1 and the top budget finding
   (one with the profiler's split of its app time, when one has it) a trace in Jaeger whose span
   carries it: its call site, its fix or breakdown, and the trace as a waterfall (``otelperf trace``);
7. alerts (``alerts``): Prometheus' and Alertmanager's alerts (at most ``--alert-wait`` seconds)
   until an alert of the budgets fires and reaches Alertmanager (the rules' ``for:`` is 1m);
8. the HTML report of the run (``report``), written to ``.otelperf/demo-report.html``.

The backend keeps running afterwards (``make demo-down`` stops it and the services).

    .venv/bin/python -m examples.shop.tour [--duration 60] [--users 20] [--port 8000] [--sqlite]
"""
