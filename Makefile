# The kit's commands. Everything runs in a virtual environment under .venv (created on first use).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Notebook cells may train for minutes on 2 CPU cores; a hung or dead kernel still fails the run.
NBVAL := --nbval-lax --nbval-cell-timeout=1200 --nbval-kernel-name=python3 -p no:cacheprovider

.PHONY: install demo test unit notebooks lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install  ## the main job: every notebook, quick mode, SYNTHETIC data, into a new runs/ folder
	$(VENV)/bin/bloodcells labs run -p data=synthetic -p quick=true

test: unit notebooks  ## the whole suite

unit: install  ## unit tests and papermill smoke runs (real data when BLOODCELLS_DATA_DIR is set)
	$(PY) -m pytest tests

notebooks: install  ## the notebooks as shipped, under nbval (SYNTHETIC data: runs anywhere, offline)
	env -u BLOODCELLS_DATA_DIR $(PY) -m pytest $(NBVAL) notebooks

lab: install  ## JupyterLab on the notebooks
	$(VENV)/bin/jupyter lab notebooks

clean:  ## remove run folders and generated synthetic data (not .venv, not downloads)
	rm -rf runs notebooks/runs data/synthetic
