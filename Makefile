# The two set-up commands of the README:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: demo test venv lint typecheck bench dagster dagster-prod clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tickml needs Python >= 3.11"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
	  echo "python3 venv module missing: apt-get install -y python3-venv (as root)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make demo [ARGS="--ticks ../shared/data/equity-ticks-2013"]: install, run the pipeline, summarize
demo: $(STAMP)
	@bash scripts/services.sh --no-browser || echo "[demo] no Redis/PostgreSQL: the live replay at the end will be skipped"
	$(BIN)/tickml demo $(ARGS)

## make test: start/install PostgreSQL + Redis if needed, install, run the whole suite
test: $(STAMP)
	bash scripts/services.sh
	$(BIN)/pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## make bench: every benchmark, one JSON line each
bench: $(STAMP)
	@for b in parse store features-batch features-stream cross-section tick-to-signal consistency execution; do $(BIN)/tickml bench $$b; done

## make dagster: the Dagster UI on 127.0.0.1:3000 with the embedded (sqlite) instance
dagster: $(STAMP)
	mkdir -p work/dagster_home
	DAGSTER_HOME=$(CURDIR)/work/dagster_home setsid $(BIN)/dagster dev -w workspace.yaml \
	  -h 127.0.0.1 -p 3000

## make dagster-prod: the same with this folder's dagster.yaml (Postgres storage, TICKML_ENV=prod)
dagster-prod: $(STAMP)
	DAGSTER_HOME=$(CURDIR) TICKML_ENV=prod setsid $(BIN)/dagster dev -w workspace.yaml \
	  -h 127.0.0.1 -p 3000

clean:
	rm -rf work .pytest_cache .ruff_cache .mypy_cache
