# Everything a user or CI needs. Targets install what they need, idempotently.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?=
CONFIG ?=
MAP ?=
FAULTS ?=
# checkov conflicts with the project's pins, so it lives in its own venv.
CKV_VENV := .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CKV_STAMP := $(CKV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: install system-deps checkov provider-schema test test-unit lint run run-db bench package clean

install: $(STAMP)

# Quiet: setuptools' notice about editable installs is silenced, and the *.egg-info it leaves in
# the source tree is removed (the installed metadata is in .venv). The project's own modules are
# compiled once here (pip compiles only site-packages), so a first `make test-unit` is as quick.
$(STAMP): pyproject.toml infra/local/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" \
	  $(BIN)/pip install --quiet -e '.[dev]' -e infra/local
	rm -rf *.egg-info infra/local/*.egg-info
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q -j 0 schemas/ess collector functions infra/local/ess_local
	touch $(STAMP)

# Services the tests and `make run` start: PostgreSQL + TimescaleDB, Pub/Sub and GCS emulators.
system-deps:
	bash infra/local/install.sh

# Static checker for infra/ (tests/infra runs it and fails without it).
checkov: $(CKV_STAMP)

$(CKV_STAMP):
	test -x $(CKV_VENV)/bin/python || $(PY) -m venv $(CKV_VENV)
	$(CKV_VENV)/bin/pip install --quiet --upgrade pip
	$(CKV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(CKV_STAMP)

# The google provider's schema (jsii assembly of the cdktf provider packages, pinned in
# tests/infra/provider_schema.py) for tests/infra/test_provider_schema.py; downloaded once.
provider-schema: install
	$(BIN)/python tests/infra/provider_schema.py $(CKV_VENV)/provider-schema

test: install system-deps checkov provider-schema
	$(BIN)/python -m pytest -q

# The fast tier: every test that needs no service (tests/conftest.py marks the others `service`);
# needs only `make install`. Bytecode caching on: compiling every module again costs seconds.
test-unit: install
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -m "not service"

lint: install
	$(BIN)/ruff check schemas collector functions infra tests
	@if command -v terraform >/dev/null; then terraform fmt -check -recursive infra; \
	else echo "lint: terraform not on PATH, skipped terraform fmt -check"; fi

run: install system-deps
	$(BIN)/python -m ess_local.run $(if $(DURATION),--duration $(DURATION)) $(if $(CONFIG),--config $(CONFIG)) $(if $(MAP),--map $(MAP)) $(if $(FAULTS),--faults $(FAULTS))

# The databases of the latest `make run` again (RUN=.run/<start> for another), until Ctrl-C.
RUN ?=
run-db: install
	$(BIN)/python -m ess_local.kept $(RUN)

# Deployment artifacts for infra/ (wheel, schema data, function archives) in build/.
package: install
	$(BIN)/python infra/package.py

bench: install system-deps
	$(BIN)/python -m tests.bench --out docs/benchmarks.md

# A run whose clone the postgres user cannot reach keeps its cluster outside: .run/*/pg links it.
clean:
	for pg in .run/*/pg; do if [ -L "$$pg" ]; then rm -rf "$$(readlink "$$pg")"; fi; done
	rm -rf $(VENV) $(CKV_VENV) build .run
