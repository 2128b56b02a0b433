# soke-lightning — every target sets itself up: on a fresh machine `make test` / `make demo` create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOKE := $(VENV)/bin/soke
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED := 1
# Data and outputs (override on the command line: make demo DEMO_DATA=/path)
DEMO_DATA ?= data/synthsign-demo
OUT ?= outputs

.PHONY: help install test test-slow test-all lint demo bench clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0 -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package (CPU torch 2.13.0) with dev extras

test: $(STAMP)  ## run the default test suite (fast, CPU, offline)
	WANDB_MODE=disabled $(VENV)/bin/pytest -q

test-slow: $(STAMP)  ## run only the slow tests
	WANDB_MODE=disabled $(VENV)/bin/pytest -q -m slow

test-all: $(STAMP)  ## run every test
	WANDB_MODE=disabled $(VENV)/bin/pytest -q -m "slow or not slow"

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check src tests bench

bench: $(STAMP)  ## run the benchmarks; JSON goes to bench/results/
	$(PY) bench/run.py

clean:  ## remove outputs and caches (keeps .venv and data)
	rm -rf $(OUT) .pytest_cache lightning_logs
