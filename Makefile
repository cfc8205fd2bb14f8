# The README's two commands: `make demo` and `make test`. Both build .venv themselves from nothing but Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit e2e bench bench-memory clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m tools.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest -m 'not e2e'

e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e

# The peers (s5cmd, rclone, aws-cli, obstore, boto3) go into their own venv, .bench/peers-venv.
bench: $(STAMP)
	$(BIN)/python -m tools.bench setup-peers
	$(BIN)/python -m tools.bench $(BENCH_ARGS)

bench-memory: $(STAMP)
	$(BIN)/python -m tools.bench --memory $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
