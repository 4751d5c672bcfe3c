# Everything a user or CI needs. Targets install what they need, idempotently.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?=
CONFIG ?=

.PHONY: install system-deps test lint run bench package clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Services the tests and `make run` start: PostgreSQL + TimescaleDB, Pub/Sub and GCS emulators.
system-deps:
	bash infra/local/install.sh

test: install system-deps
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check schemas collector functions infra tests

run: install system-deps
	@echo "make run: the whole local pipeline is not wired up yet (issue 7)." >&2; exit 2

bench: install system-deps
	$(BIN)/python -m ess_local.bench --out docs/benchmarks.md

clean:
	rm -rf $(VENV) build .run
