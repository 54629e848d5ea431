# One entry point for contributors and CI (.ci/run calls `make lint` and `make test`).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
# The oldest supported versions (scripts/install.sh OLDEST_PINS: OpenTelemetry 1.30, SQLAlchemy 2.0, ...).
VENV_OLDEST ?= .venv-oldest
PY := $(VENV)/bin/python
# Env lines from scripts/services.sh: OTELPERF_TEST_POSTGRES_URL / OTELPERF_TEST_REDIS_URL.
SERVICE_ENV = $$(scripts/services.sh env)

.PHONY: setup services services-stop test lint fmt demo demo-down bench bench-instructions clean

setup:
	scripts/install.sh

services:
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

# Four legs: everything on the newest releases; the unit suite with otelperf's fast paths around
# the SDK forced off; the unit suite (and the PostgreSQL tests) on the oldest supported releases,
# with the fast paths on and forced off. The end-to-end suite runs on the newest (the pinned stack).
VERSIONS = 'import sqlalchemy as s, fastapi as f, starlette as t, opentelemetry.sdk.version as o; \
	print(f"OpenTelemetry SDK {o.__version__}, SQLAlchemy {s.__version__}, FastAPI {f.__version__}, Starlette {t.__version__}")'
test: setup services
	env $(SERVICE_ENV) $(VENV)/bin/pytest -q
	@echo "== fast paths forced off (OTELPERF_SDK_FAST_PATHS=0): unit suite on $$($(PY) -c $(VERSIONS)) =="
	env OTELPERF_SDK_FAST_PATHS=0 $(VENV)/bin/pytest -q tests/unit
	@echo "== oldest supported versions ($(VENV_OLDEST)): $$($(VENV_OLDEST)/bin/python -c $(VERSIONS)) =="
	env $(SERVICE_ENV) $(VENV_OLDEST)/bin/pytest -q tests/unit tests/integration/test_postgres.py
	@echo "== oldest supported versions, fast paths forced off =="
	env OTELPERF_SDK_FAST_PATHS=0 $(VENV_OLDEST)/bin/pytest -q tests/unit

lint:
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy
	if command -v promtool >/dev/null; then promtool check rules prometheus/rules/*.yml; fi

fmt:
	$(VENV)/bin/ruff check --fix
	$(VENV)/bin/ruff format

# Leaves the backend (collector, Jaeger, Prometheus, Alertmanager) running for a look around;
# demo-down stops it. DEMO_DURATION: seconds of load (the alerts need about a minute of it).
demo: setup services
	$(PY) -m examples.shop.tour --duration $${DEMO_DURATION:-60}

demo-down:
	$(VENV)/bin/otelperf stack down
	scripts/services.sh stop

bench:
	$(PY) benchmarks/overhead.py

bench-instructions:  # needs valgrind
	$(PY) benchmarks/instructions.py

clean:
	-scripts/services.sh stop
	rm -rf .otelperf .pytest_cache .mypy_cache .ruff_cache build dist examples/shop.db examples/uploads
	find . -name __pycache__ -type d -not -path './.venv*' -prune -exec rm -rf {} +
