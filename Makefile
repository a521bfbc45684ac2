# Two commands on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data
SERVER_NAME ?= localhost
PORT   ?= 8008

.PHONY: run test check lint format typecheck imports pytest install install-dev clean sytest

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Ranvier needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make run: set up, write ./data/homeserver.yaml + signing key on first run, serve on :8008 (SQLite)
run: install
	@test -f $(DATA)/homeserver.yaml || $(BIN)/ranvier init --server-name $(SERVER_NAME) --data-dir $(DATA) --port $(PORT)
	exec $(BIN)/ranvier run --config $(DATA)/homeserver.yaml

## make test: install dev tools, then every check and every test (both database engines)
test: install-dev check

check: lint typecheck imports pytest

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck:
	$(BIN)/mypy

imports:
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest -q

## make sytest: run SyTest (matrix-org/sytest, Perl) against Ranvier; optional, not part of
## `make test`. Needs the SyTest checkout in $(SYTEST_HOME)/src and the workspace harness
## (run-sytest.sh) in $(SYTEST_HARNESS); see README.md "SyTest". SYTEST_TESTS picks files
## or directories of the checkout (default: the whole suite).
SYTEST_HOME    ?= /var/tmp/sytest
SYTEST_HARNESS ?= ../shared/sytest
SYTEST_TESTS   ?=
HS_PYTHON      ?= $(abspath $(BIN)/python)

sytest: install
	@test -f $(SYTEST_HOME)/src/run-tests.pl || { echo "no SyTest checkout in $(SYTEST_HOME)/src (set SYTEST_HOME)" >&2; exit 2; }
	@test -x $(SYTEST_HARNESS)/run-sytest.sh || { echo "no run-sytest.sh in $(SYTEST_HARNESS) (set SYTEST_HARNESS)" >&2; exit 2; }
	SYTEST_HOME=$(SYTEST_HOME) SYTEST_IMPL=Generic \
	  SYTEST_HS_COMMAND="$(HS_PYTHON) $(abspath tests/sytest/ranvier_from_generic.py)" \
	  SYTEST_BLACKLIST=$(abspath tests/sytest/expected-failures) TIMEOUT_FACTOR=2 \
	  $(SYTEST_HARNESS)/run-sytest.sh $(SYTEST_TESTS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
