# The two set-up commands of a fresh machine are `make dev` and `make test`. `make dev` needs
# Python 3.11+ with venv; `make test` also Python 3.12+ (the chart tests) and Debian's chromium
# (the browser test): each part missing stops it with a message saying how to get it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The chart tests lint and render helm/flowhooks with Helm's Go library, which the helm-sdkpy
# wheel bundles and which needs Python 3.12+: it gets a venv of its own. HELM_PYTHON names the
# interpreter; else the first 3.12+ found among python3.12, python3.13 and pyenv's versions.
# A .gitignore of '*' inside it keeps it out of git and ruff.
HELM_SDKPY  := 0.1.32
HELM_VENV   := .venv-helm
HELM_STAMP  := $(HELM_VENV)/.installed-$(HELM_SDKPY)
HELM_PYTHON ?=

.PHONY: install dev demo test lint bench bench-routing bench-storm clean chromium promtool

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "flowhooks needs Python 3.11 or newer with its venv module as $(PYTHON):" \
	       "install one (Debian: apt-get install python3 python3-venv)," \
	       "or name it with PYTHON=/path/to/python3.11" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(HELM_STAMP):
	@set -e; found=""; \
	for candidate in $(HELM_PYTHON) python3.12 python3.13 \
	    "$$(pyenv root 2>/dev/null)"/versions/3.1[2-9]*/bin/python3 \
	    "$$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	  if "$$candidate" -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    found="$$candidate"; break; \
	  fi; \
	done; \
	if [ -z "$$found" ]; then \
	  echo "The chart tests need Python 3.12 or newer, with its venv module, for the helm-sdkpy" \
	       "wheel, and none was found (HELM_PYTHON, python3.12, python3.13, pyenv's versions):" \
	       "install one (Debian: apt-get install python3.12 python3.12-venv; or pyenv install" \
	       "3.12), or name it with HELM_PYTHON=/path/to/python3.12" >&2; \
	  exit 1; \
	fi; \
	echo "$(HELM_VENV): $$found"; \
	rm -rf $(HELM_VENV); \
	"$$found" -m venv $(HELM_VENV)
	echo '*' > $(HELM_VENV)/.gitignore
	$(HELM_VENV)/bin/pip install --quiet --upgrade pip
	$(HELM_VENV)/bin/pip install --quiet 'helm-sdkpy==$(HELM_SDKPY)'
	touch $(HELM_STAMP)

install: $(STAMP)

## Run receiver, worker and an embedded Redis with the example config (make dev PORT=8001).
PORT ?= 8000
dev: $(STAMP)
	$(BIN)/flowhooks dev --port $(PORT)

## dev and the Etlworks simulator with config/examples/chain.yaml: a flow fails, is retried,
## succeeds and runs its dependent; then the story, as `flowhooks events show` tells it.
demo: $(STAMP)
	$(BIN)/python -m tests.etlworks.demo

## The browser test of the admin pages drives Debian's chromium (never a downloaded browser);
## installed here when missing and this runs as root on a system with apt-get.
CHROMIUM    ?= /usr/bin/chromium
CAN_INSTALL ?= $(shell [ "$$(id -u)" = 0 ] && command -v apt-get)
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ -n "$(CAN_INSTALL)" ]; then \
	    echo "installing Debian's chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "The browser test needs Debian's chromium at $(CHROMIUM), which is missing:" \
	         "install it (sudo apt-get install chromium), or run make test as root on" \
	         "Debian or Ubuntu, which installs it" >&2; \
	    exit 1; \
	  fi; \
	fi

## The chart's alert rules and dashboard are checked and tested by Prometheus' promtool, from
## Debian's prometheus package (its service is not started); installed as chromium is.
PROMTOOL ?= $(shell command -v promtool)
promtool:
	@if [ -z "$(PROMTOOL)" ]; then \
	  if [ -n "$(CAN_INSTALL)" ]; then \
	    echo "installing Debian's prometheus package for promtool (the chart's alert tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends prometheus; \
	  else \
	    echo "The chart's alert tests need promtool, which is missing: install Debian's" \
	         "prometheus package (sudo apt-get install --no-install-recommends prometheus)," \
	         "or run make test as root on Debian or Ubuntu, which installs it" >&2; \
	    exit 1; \
	  fi; \
	fi

## Install and run the whole test suite; it starts its own Redis.
test: $(STAMP) $(HELM_STAMP) chromium promtool
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

## A storm of failures during a steady stream, routed to a webhook, Slack and PagerDuty stand-ins.
bench-storm: $(STAMP)
	$(BIN)/python -m tests.bench.storm $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(HELM_VENV) .pytest_cache .mypy_cache .ruff_cache
