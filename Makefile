# Workflow Engine — developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_ENV := var/dev.env
GOOGLEAPIS = $(shell $(BIN)/python -c 'import google.api, pathlib; print(pathlib.Path(google.api.__path__[0]))')

.PHONY: help setup run migrate test test-fast lint fmt gen openapi check-gen lint-proto breaking fuzz bench bench-core clean node-test

help: ## List the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml gen/pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./gen
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e ./clients/python
	@touch $(STAMP)

node_modules/.bin/buf: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(STAMP) node_modules/.bin/buf ## Create .venv and install the engine with its dev tools (idempotent)

run: $(STAMP) ## Start the engine on its embedded defaults (SQLite, dev credentials generated once, local dashboards allowed)
	@$(BIN)/engine dev-credentials $(DEV_ENV)
	@set -a && . ./$(DEV_ENV) && set +a && \
		ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS=$${ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS:-true} exec $(BIN)/engine serve

migrate: $(STAMP) ## Apply database migrations (ENGINE_DATABASE_URL)
	$(BIN)/engine migrate

test: setup lint check-gen lint-proto node-test ## Lint, drift checks, the Node client's tests, then every test (SQLite and PostgreSQL)
	$(BIN)/python -m pytest

node-test: $(STAMP) ## The Node.js client (clients/node): tsc (strict), then its tests against a live engine
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error && npm test

test-fast: $(STAMP) ## Only the tests, without the lint and drift checks
	$(BIN)/python -m pytest -x -q

lint: $(STAMP) ## ruff and mypy (the engine and the Python client, strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd clients/python && ../../$(BIN)/mypy

fmt: $(STAMP) ## Format and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

gen: $(STAMP) ## Regenerate gen/ from proto/
	$(BIN)/python scripts/gen_proto.py gen

openapi: $(STAMP) ## Regenerate docs/openapi.json from the descriptors (drift is checked by the tests)
	$(BIN)/python scripts/gen_openapi.py

check-gen: $(STAMP) ## Fail if gen/ differs from what proto/ generates
	@rm -rf build/gen-check && $(BIN)/python scripts/gen_proto.py build/gen-check
	@diff -r -q gen/workflow_engine build/gen-check/workflow_engine -x __pycache__ \
		|| (echo "gen/ has drifted from proto/: run 'make gen' and commit" && exit 1)
	@echo "gen/ is up to date"

build/third_party: $(STAMP)
	@mkdir -p build/third_party/google/api
	@cp $(GOOGLEAPIS)/annotations.proto $(GOOGLEAPIS)/http.proto $(GOOGLEAPIS)/httpbody.proto build/third_party/google/api/

lint-proto: node_modules/.bin/buf build/third_party ## buf lint (STANDARD)
	node_modules/.bin/buf lint
	@echo "buf lint: ok"

breaking: node_modules/.bin/buf build/third_party ## buf breaking (WIRE_JSON) against main (BASE=ref to change)
	scripts/buf_breaking.sh $(or $(BASE),main)

FUZZ_EXAMPLES ?= 500

fuzz: $(STAMP) ## Fuzz every REST operation from /openapi.json with schemathesis (FUZZ_EXAMPLES per operation, default 500)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/integration/test_fuzz_openapi.py -q --hypothesis-show-statistics

bench: $(STAMP) ## Benchmarks: engine vs. bare grpcio, REST vs. gRPC, provider ingress, webhook delivery
	$(BIN)/python -m bench
	$(BIN)/python -m bench.ingress_throughput
	$(BIN)/python -m bench.delivery_throughput

bench-core: $(STAMP) ## Diagnostics: the ingress and the dispatcher alone, in process (no HTTP, no gRPC)
	$(BIN)/python -m bench.ingress_core
	$(BIN)/python -m bench.dispatch_core

clean: ## Remove generated build output (not .venv)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache clients/node/dist
