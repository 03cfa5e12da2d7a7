# tracehouse — every target sets itself up from a fresh clone (creates .venv, installs).
#   make run    all-in-one on embedded defaults: OTLP :4317/:4318, query API :8080
#   make test   the test suite (what CI runs)
#   make bench  the benchmarks: all-in-one, GenAI processors, Kafka sidecar and writer (figures go to BENCHMARKS.md)
#   make dashboards  regenerate the Grafana dashboards (deploy/grafana) from their code

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= deploy/config/all-in-one.yaml
PYTEST_ARGS ?=
# Installs Debian's prometheus for the dashboard test when missing (as root); else says it will skip.
ENSURE_PROMETHEUS := deploy/scripts/ensure-prometheus.sh

.PHONY: run test bench typecheck lint validate-configs dashboards clean install install-test

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tracehouse needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=77" wheel

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e . --config-settings editable_mode=strict
	@touch $@

$(VENV)/.deps-test: pyproject.toml $(VENV)/.deps
	$(BIN)/pip install -q -e ".[test]" --config-settings editable_mode=strict
	@touch $@

# The strict editable install links every module into build/__editable__*; relinking
# is cheap (~1 s) and picks up modules added since the last install.
install: $(VENV)/.deps
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict

install-test: $(VENV)/.deps-test install
	@sh $(ENSURE_PROMETHEUS)

run: install
	$(BIN)/tracehouse run --config $(CONFIG)

test: install-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

typecheck: install-test
	$(BIN)/mypy -p tracehouse.core -p tracehouse.ingest -p tracehouse.processors -p tracehouse.sinks -p tracehouse.query -p tracehouse.bench -p tracehouse.grafana

lint: install-test
	$(BIN)/ruff check core ingest processors sinks query bench deploy/grafana tests

# Grafana dashboards as code: regenerate deploy/grafana/dashboards/*.json from deploy/grafana/*.py.
dashboards: install-test
	$(BIN)/python -m tracehouse.grafana --out deploy/grafana/dashboards

validate-configs: install
	@for f in deploy/config/*.yaml; do $(BIN)/tracehouse validate-config $$f || exit 1; done

# Two load shapes: 8 clients (latency-bound, like a few app instances) and 32 clients
# (enough to saturate the one server core). Figures go to BENCHMARKS.md by hand.
bench: install-test
	$(BIN)/python -m tracehouse.bench.run_all_in_one --concurrency 8 --json-out bench-results-c8.json
	$(BIN)/python -m tracehouse.bench.run_all_in_one --concurrency 32 --json-out bench-results-c32.json
	$(BIN)/python -m tracehouse.bench.genai_processors --json-out bench-results-genai-processors.json
	$(BIN)/python -m tracehouse.bench.run_kafka --concurrency 32 --json-out bench-results-kafka.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .hypothesis
