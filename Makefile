# tracehouse — every target sets itself up from a fresh clone (creates .venv, installs).
#   make run    all-in-one on embedded defaults: OTLP :4317/:4318, query API :8080, ClickHouse HTTP :8123
#   make test   the test suite (what CI runs), after `make test-tools` (Debian's prometheus and chromium)
#   make bench  the benchmarks: all-in-one, GenAI processors, the stages with and without the C module, Kafka sidecar and writer, against MLflow, the trace list over 1M and 10M spans, big trace reads, reads against ingestion, scores (figures go to BENCHMARKS.md)
#   make dashboards  regenerate the Grafana dashboards (deploy/grafana) from their code
#   make mlflow-snapshot  rerecord what MLflow's own server holds after the seed flows (tests compare with it)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= deploy/config/all-in-one.yaml
PYTEST_ARGS ?=

.PHONY: run test test-tools bench typecheck lint validate-configs dashboards mlflow-snapshot clean install install-test

# The strict editable install links every package file into build/__editable__*: an edited
# file shows through, an added or removed one needs a relink. `install` relinks only when the
# list of files changed (its cksum, kept in $(VENV)/.linked), and without setuptools'
# "Editable installation" banner.
PACKAGE_DIRS := core net extensions ingest processors sinks query bench deploy/grafana deploy/config
PACKAGE_FILES := $(shell find $(PACKAGE_DIRS) -name __pycache__ -prune -o -type f -print 2>/dev/null | LC_ALL=C sort | cksum)
EDITABLE := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --config-settings editable_mode=strict
LINKED := echo "$(PACKAGE_FILES)" > $(VENV)/.linked

# Installs show pip's progress: the first one downloads the dependencies (a few minutes).
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tracehouse needs Python >= 3.11 (set PYTHON=python3.11)")'
	@echo "make: creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip "setuptools>=77" wheel

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	@echo "make: installing tracehouse (editable) and its dependencies into $(VENV)"
	$(EDITABLE) --progress-bar on -e .
	@$(LINKED)
	@touch $@ $(VENV)/.native

$(VENV)/.deps-test: pyproject.toml $(VENV)/.deps
	@echo "make: installing the test dependencies into $(VENV)"
	$(EDITABLE) --progress-bar on -e ".[test]"
	@$(LINKED)
	@touch $@

# The compiled module (setup.py) is rebuilt when its source changes.
NATIVE_SOURCES := core/_otlpwire.c
$(VENV)/.native: $(NATIVE_SOURCES) setup.py | $(VENV)/.deps
	@echo "make: building the C module ($(NATIVE_SOURCES))"
	$(EDITABLE) -q --no-deps --no-build-isolation -e .
	@$(LINKED)
	@touch $@

install: $(VENV)/.deps $(VENV)/.native
	@if [ "$$(cat $(VENV)/.linked 2>/dev/null)" != "$(PACKAGE_FILES)" ]; then \
	echo "make: package files added or removed: relinking the editable install"; \
	$(EDITABLE) -q --no-deps --no-build-isolation -e . && $(LINKED); \
	fi

install-test: $(VENV)/.deps-test install

# Programs some tests drive, from Debian: prometheus (the Pipeline health dashboard test) and
# chromium (the trace explorer's browser tests). Installed with apt-get, in the open, when
# missing; deploy/scripts/test-tools.sh says what and why, or which tests will skip.
test-tools:
	@echo "make test-tools: Debian's prometheus and chromium, for the dashboard and browser tests"
	@sh deploy/scripts/test-tools.sh

run: install
	$(BIN)/tracehouse run --config $(CONFIG)

# One test file per core, at most four: each worker runs its own chDB engine, Kafka broker,
# servers and browser, so memory grows with the workers.
test: install-test test-tools
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

# The seed flows against a live `mlflow server`, its snapshot written to
# tests/fixtures/mlflow-server-snapshot.json (after an mlflow upgrade, the tests compare live until then).
mlflow-snapshot: install-test
	TRACEHOUSE_MLFLOW_SERVER=record $(BIN)/python -m pytest -q tests/integration/test_mlflow_endpoint.py -k every_seed_flow

typecheck: install-test
	$(BIN)/mypy -p tracehouse.core -p tracehouse.net -p tracehouse.extensions -p tracehouse.ingest -p tracehouse.processors -p tracehouse.sinks -p tracehouse.query -p tracehouse.bench -p tracehouse.grafana

lint: install-test
	$(BIN)/ruff check core net extensions ingest processors sinks query bench deploy tests

# Grafana dashboards as code: regenerate deploy/grafana/dashboards/*.json from deploy/grafana/*.py.
dashboards: install-test
	$(BIN)/python -m tracehouse.grafana --out deploy/grafana/dashboards

validate-configs: install
	@for f in deploy/config/*.yaml; do $(BIN)/tracehouse validate-config $$f || exit 1; done

# Three load shapes: one client exporting 512 spans at a time (an SDK's BatchSpanProcessor:
# acknowledgement latency), 8 clients (latency-bound, like a few app instances) and 32
# clients (enough to saturate the one server core); then 32 clients against the all-in-one on every
# core with two processor workers. Figures go to BENCHMARKS.md by hand.
bench: install-test
	$(BIN)/python -m tracehouse.bench.run_clickhouse_floor --spans 100000 --json-out bench-results-floor.json
	$(BIN)/python -m tracehouse.bench.run_all_in_one --concurrency 1 --spans-per-request 512 --spans 20480 --json-out bench-results-c1.json
	$(BIN)/python -m tracehouse.bench.run_all_in_one --concurrency 8 --json-out bench-results-c8.json
	$(BIN)/python -m tracehouse.bench.run_all_in_one --concurrency 32 --json-out bench-results-c32.json
	TRACEHOUSE_WORKERS=2 $(BIN)/python -m tracehouse.bench.run_all_in_one --server-cores 0 --concurrency 32 --json-out bench-results-c32-workers.json
	$(BIN)/python -m tracehouse.bench.genai_processors --json-out bench-results-genai-processors.json
	$(BIN)/python -m tracehouse.bench.native_stages --json-out bench-results-native-stages.json
	$(BIN)/python -m tracehouse.bench.run_kafka --concurrency 32 --json-out bench-results-kafka.json
	$(BIN)/python -m tracehouse.bench.run_mlflow_side_by_side --server-cores 0 --json-out bench-results-vs-mlflow.json
	$(BIN)/python -m tracehouse.bench.run_trace_list --spans 1000000 --json-out bench-results-trace-list.json
	$(BIN)/python -m tracehouse.bench.run_trace_list --spans 1000000 --copies 9 --server-cores 0 --rounds 20 --json-out bench-results-trace-list-10m.json
	$(BIN)/python -m tracehouse.bench.run_trace_reads --spans 100000 --readers 4 --json-out bench-results-trace-reads.json
	$(BIN)/python -m tracehouse.bench.run_trace_reads --trace-spans 10000 --other-spans 200000 --rounds 20 --json-out bench-results-trace-read-10k.json
	$(BIN)/python -m tracehouse.bench.run_scores --traces 100000 --json-out bench-results-scores.json
	$(BIN)/python -m tracehouse.bench.run_reads_vs_ingest --preload-spans 300000 --readers 4 --json-out bench-results-reads-vs-ingest.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .hypothesis

# The local stack (deploy/compose): Kafka, ClickHouse, the tracehouse sidecar, writer and query
# service, an example GenAI app, Prometheus and Grafana; needs Docker with the compose plugin.
.PHONY: stack-up stack-down
STACK_COMPOSE := docker compose -f deploy/compose/compose.yaml
STACK_NEEDS_DOCKER := command -v docker >/dev/null 2>&1 || { echo "make: the stack needs Docker (docker not found on PATH): install Docker Engine or Docker Desktop" >&2; exit 1; }; \
	docker compose version >/dev/null 2>&1 || { echo "make: the stack needs the Docker Compose plugin ('docker compose version' failed): install docker-compose-plugin" >&2; exit 1; }

stack-up:
	@$(STACK_NEEDS_DOCKER)
	$(STACK_COMPOSE) up -d --build --wait
	@echo "tracehouse stack is up:"
	@echo "  Grafana       http://localhost:3000   (anonymous viewer; admin / admin)"
	@echo "  query API     http://localhost:8080   (/api/v1/traces, /api/v1/prompts, /docs)"
	@echo "  OTLP          http://localhost:4318 (HTTP), localhost:4317 (gRPC): the sidecar"
	@echo "  Prometheus    http://localhost:9090"
	@echo "  ClickHouse    http://localhost:8123   (tracehouse / tracehouse)"
	@echo "Stop and delete its data with: make stack-down"

stack-down:
	@$(STACK_NEEDS_DOCKER)
	$(STACK_COMPOSE) down -v

# The container images (deploy/docker): `full` (every role) and the slim `sidecar`.
.PHONY: image
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE_REVISION = $$(git rev-parse HEAD 2>/dev/null || echo unknown)
image:
	docker build -f deploy/docker/Dockerfile --build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION) -t ghcr.io/tracehouse/tracehouse:$(IMAGE_VERSION) .
	docker build -f deploy/docker/Dockerfile --target sidecar --build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION) -t ghcr.io/tracehouse/tracehouse-sidecar:$(IMAGE_VERSION) .
