# Leadtrail developer commands. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv up down status test lint types arch pytest unit contract integration e2e \
        browser contracts bench fmt clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create the virtualenv and install Leadtrail with its dev tools

up: $(STAMP) ## Start Kafka, the store, the topics, all five services and the console (DETACH=1: in the background)
	$(BIN)/python -m devstack up $(if $(DETACH),--detach,)

down: $(STAMP) ## Stop a stack started by `make up DETACH=1`
	$(BIN)/python -m devstack down

status: $(STAMP) ## Show what the local stack is running
	$(BIN)/python -m devstack status

test: lint types arch pytest ## Lint, types, architecture check and the whole test suite

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP) ## mypy --strict on services, contracts, ops, devstack, tools, tests and bench
	$(BIN)/mypy

arch: $(STAMP) ## import-linter: services stay independent of each other
	$(BIN)/lint-imports

pytest: $(STAMP) browser ## The whole pytest suite (starts and stops Kafka and the store itself)
	$(BIN)/pytest $(PYTEST_ARGS)

browser: ## Debian's Chromium for the console's browser tests (installed if missing)
	@deploy/local/chromium.sh > /dev/null

unit: $(STAMP) ## Unit and contract tests only (no infrastructure)
	$(BIN)/pytest tests/unit tests/contract $(PYTEST_ARGS)

integration: $(STAMP) ## Integration tests on real Kafka and the document store
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

e2e: $(STAMP) ## End-to-end tests: the whole cluster as separate processes
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

contracts: $(STAMP) ## Regenerate JSON Schemas, AsyncAPI and OpenAPI documents
	$(BIN)/python -m tools.contracts generate

bench: $(STAMP) ## All benchmarks on a fresh stack of their own; writes bench/README.md (about 5 min on 2 cores)
	$(BIN)/python -m bench.report $(BENCH_ARGS)

fmt: $(STAMP) ## Format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtualenv and the run directory (caches in ~/.cache/leadtrail stay)
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache
