# The two commands of the README. Each makes its own virtual environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000

.PHONY: run test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	touch $@

## run: the service on the embedded SQLite default (migrations applied at start)
run: $(BIN)/.installed
	RELAY_IN_PROCESS=$${RELAY_IN_PROCESS:-true} $(BIN)/flask --app wsgi run --port $(PORT)

## test: the whole suite (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)
test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: every figure of bench/README.md beside its peer and its limit
bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache
