# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv when missing. torch is pinned first so pip takes the local CPU build
# instead of pulling GBs of CUDA wheels.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The PostgreSQL risk-log tests start their own server from Debian's binaries (initdb, pg_ctl);
# the package is installed only when neither Debian's folder nor PATH has them.
PG_FOUND = { ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	{ command -v initdb && command -v pg_ctl; } >/dev/null 2>&1; }
PG_APT = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1
PG_INSTALL = { command -v apt-get >/dev/null 2>&1 && \
	{ $(PG_APT) || { apt-get update -qq >/dev/null 2>&1 && $(PG_APT); }; }; }

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,gemma,postgres,ray,serve]"
	@$(PG_FOUND) || $(PG_INSTALL) || echo "note: could not install the PostgreSQL server \
	(apt-get missing, not root, or offline): the PostgreSQL risk-log tests will skip"
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
