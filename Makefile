# The two commands of the README. Each makes its own virtual environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
COMPOSIO_PORT ?= 5001
USER_ID ?= alice

.PHONY: help run token test bench clean

## help: list the targets
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	touch $@

## run: the sandbox: the service on PORT (5000) and a sandbox Composio on COMPOSIO_PORT (5001), SQLite
run: $(BIN)/.installed
	$(BIN)/python -m web.dev.sandbox --port $(PORT) --composio-port $(COMPOSIO_PORT)

## token: print only a sandbox session token for USER_ID (default alice), for TOKEN=...
token: $(BIN)/.installed
	@LEDGER_ENV=development COMPOSIO_BASE_URL=http://127.0.0.1:$(COMPOSIO_PORT) \
	  $(BIN)/flask --app wsgi ledger dev-token --user $(USER_ID)

## test: the whole suite (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: every figure of bench/README.md beside its peer and its limit
bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

## clean: remove the virtual environment and instance/ (the sandbox's SQLite and key)
clean:
	rm -rf $(VENV) instance .pytest_cache
