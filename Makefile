# The two set-up commands of a fresh machine are `make dev` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install dev test lint bench bench-routing clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run receiver, worker and an embedded Redis with the example config.
dev: $(STAMP)
	$(BIN)/flowhooks dev

## Install and run the whole test suite; it starts its own Redis.
test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Receiver throughput against a bare Starlette endpoint, same uvicorn settings.
bench: $(STAMP)
	$(BIN)/python -m tests.bench.ingest $(BENCH_ARGS)

## Events routed and delivered to a local HTTP sink at steady rates, next to RQ's no-op rate.
bench-routing: $(STAMP)
	$(BIN)/python -m tests.bench.routing $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
