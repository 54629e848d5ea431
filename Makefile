# One entry point for contributors and CI (.ci/run calls `make lint` and `make test`).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
# The oldest supported versions (scripts/install.sh OLDEST_PINS); named when it pinned SQLAlchemy alone.
VENV_SA20 ?= .venv-sa20
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

test: setup services
	env $(SERVICE_ENV) $(VENV)/bin/pytest -q
	@echo "== oldest supported versions ($(VENV_SA20)): $$($(VENV_SA20)/bin/python -c \
		'import sqlalchemy as s, fastapi as f, starlette as t; print(f"SQLAlchemy {s.__version__}, FastAPI {f.__version__}, Starlette {t.__version__}")') =="
	env $(SERVICE_ENV) $(VENV_SA20)/bin/pytest -q \
		tests/unit/instrumentation/test_sqlalchemy.py tests/integration/test_postgres.py \
		tests/unit/instrumentation/test_asgi.py tests/unit/instrumentation/test_asgi_routes.py

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
