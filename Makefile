# Two commands on a fresh machine: `make run` and `make test`.
# Both build .venv first (idempotent: only when pyproject.toml changed).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
CONFIG ?= config/config.yaml
PYTEST_ARGS ?=

.PHONY: setup sysdeps run report test lint dryrun clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of torch first (a local wheel here); an unpinned torch would pull CUDA.
	$(PY) -m pip install --quiet "torch==2.13.0" || $(PY) -m pip install --quiet torch
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## The workflow's main job on the embedded default, then the HTML report.
run: setup
	$(PY) -m snakemake --cores $(CORES) --configfile $(CONFIG) --rerun-incomplete
	$(PY) -m snakemake --cores 1 --configfile $(CONFIG) --report results/report.html
	@echo "Report: $$(pwd)/results/report.html"

## System services of the tests (SLURM, headless Chromium): installed once, as root; skipped otherwise.
sysdeps:
	-@.ci/install-slurm >/dev/null 2>&1 || echo "SLURM not installed (needs root + apt-get): the SLURM tests will skip"
	-@.ci/install-chromium >/dev/null 2>&1 || echo "Chromium not installed (needs root + apt-get): the report browser test will skip"

test: setup sysdeps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m snakemake --lint --cores 1
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules

dryrun: setup
	$(PY) -m snakemake --cores 1 --configfile $(CONFIG) -n

clean:
	rm -rf results/* logs .snakemake
