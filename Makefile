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
## `make test`. Both folders live outside the repository and must be named:
## SYTEST_HOME (holds the SyTest checkout in src/) and SYTEST_HARNESS (holds run-sytest.sh);
## see README.md "SyTest". SYTEST_TESTS picks files
## or directories of the checkout (default: the whole suite). HS_PYTHON runs the server
## (default .venv/bin/python; `make install` first); the adapter puts this checkout's src/
## first on its path.
SYTEST_HOME    ?=
SYTEST_HARNESS ?=
SYTEST_TESTS   ?=
HS_PYTHON      ?= $(abspath $(BIN)/python)

# No `install` prerequisite: it would (re)install into whatever venv HS_PYTHON belongs to.
sytest:
	@test -n "$(SYTEST_HOME)" -a -n "$(SYTEST_HARNESS)" || { echo "set SYTEST_HOME (SyTest checkout in its src/) and SYTEST_HARNESS (run-sytest.sh)" >&2; exit 2; }
	@test -x $(HS_PYTHON) || { echo "no $(HS_PYTHON): run 'make install' first or set HS_PYTHON" >&2; exit 2; }
	@test -f $(SYTEST_HOME)/src/run-tests.pl || { echo "no SyTest checkout in $(SYTEST_HOME)/src (set SYTEST_HOME)" >&2; exit 2; }
	@test -x $(SYTEST_HARNESS)/run-sytest.sh || { echo "no run-sytest.sh in $(SYTEST_HARNESS) (set SYTEST_HARNESS)" >&2; exit 2; }
	SYTEST_HOME=$(SYTEST_HOME) SYTEST_IMPL=Generic \
	  SYTEST_HS_COMMAND="$(HS_PYTHON) $(abspath tests/sytest/ranvier_from_generic.py)" \
	  SYTEST_BLACKLIST=$(abspath tests/sytest/expected-failures) TIMEOUT_FACTOR=2 \
	  $(SYTEST_HARNESS)/run-sytest.sh $(SYTEST_TESTS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
