# Two set-up commands: `make demo` (demo end to end) and `make test` (the test suite).
# Both create .venv and install the pinned requirements on first use.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(VENV)/bin
export KEDRO_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1

.PHONY: install demo demo-real test lint bench dvc-deps

$(VENV)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

# The chain through DVC (dvc.yaml: one stage per pipeline, `kedro run --env demo --pipeline X`),
# so that dvc.lock records the run: `dvc status` is clean afterwards and `dvc exp show` /
# `dvc metrics show` see it. The stages call `kedro`: the venv's bin goes first on PATH.
demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	@echo "report: data/demo/08_reporting/report.html   metrics: data/demo/08_reporting/metrics.json"

# The realistic demo (docs/demo.md, "Realistic demo"): real pictures (Debian's gcompris-qt-data,
# fetched with apt-get into data/demo_real/01_raw/image_cache/; cairosvg needs libcairo2) with
# the real recordings of ../shared/data/sounds. It stops with one message where either is
# missing. A plain chain of `kedro run`s: dvc.yaml is the default demo's (--env demo).
# `make demo-real SEED=1` trains with another seed (train.seed; the data and the pre-trained
# separator stay those of seed 0), as for the second seed of the README's figures.
DEMO_REAL_CHAIN := demo_data ingest coincidence pretrain_audio train calibrate evaluate
SEED ?= 0
demo-real: install
	@for p in $(DEMO_REAL_CHAIN); do \
	  $(BIN)/kedro run --env demo_real --pipeline $$p --params train.seed=$(SEED) || exit $$?; done
	@echo "report: data/demo_real/08_reporting/report.html   metrics: data/demo_real/08_reporting/metrics.json"

# Rewrite the src/ deps of every dvc.yaml stage from the imports of its pipeline (after moving
# code); `$(BIN)/python -m audioscope_kedro.source_closure --check` lists what is out of date.
dvc-deps: install
	$(BIN)/python -m audioscope_kedro.source_closure --write-dvc

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/mixit.py
	$(BIN)/python benchmarks/attention.py
	$(BIN)/python benchmarks/realtime.py
