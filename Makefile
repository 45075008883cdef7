# The kit's commands. Everything runs in a virtual environment under .venv (created on first use).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# nbval runs quick-mode copies of the notebooks (papermill --prepare-only injects the parameters; 02's
# improved CNN on a 2,000-image subset, as its quick mode trains on every image). `make test` does not
# need it: its one pass over the notebooks is the lab runner's (tests/conftest.py, course_run).
NBVAL := --nbval-lax --nbval-cell-timeout=600 --nbval-kernel-name=python3 -p no:cacheprovider
NBVAL_DIR := runs/nbval

.PHONY: install lock demo full test quick-test lint unit notebooks params outputs release site lab clean

# The exact tested versions come from constraints.txt (the lock file); pyproject.toml holds the ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -c constraints.txt -e '.[dev]'
	$(PY) -c "from bloodcells._quiet import install_startup_guard as g; print('guard:', g())"  # TF and torch in any order
	touch $(STAMP)

install: $(STAMP)

lock:  ## re-resolve the newest versions within pyproject.toml's ranges into constraints.txt (then run make test)
	rm -rf $(VENV)-lock && $(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install -q --upgrade pip
	$(VENV)-lock/bin/pip install -q -e '.[dev]'
	sed -n '/^#/p' constraints.txt > constraints.new
	$(VENV)-lock/bin/pip freeze --exclude-editable >> constraints.new
	mv constraints.new constraints.txt && rm -rf $(VENV)-lock

demo: install  ## the main job: every notebook, quick mode, SYNTHETIC data, into a new runs/ folder
	$(VENV)/bin/bloodcells labs run -p data=synthetic -p quick=true

full: install  ## every notebook at full length into a new runs/ folder (real data when found; about 40 min on 2 cores)
	$(VENV)/bin/bloodcells labs run

test: lint unit  ## the whole suite, each notebook executed once (quick, SYNTHETIC); full length: `make full`, benchmarks/

quick-test: install  ## the inner loop, about a minute: everything but training, kernels, browsers
	$(PY) -m pytest -m "not slow" tests

lint: install  ## ruff over the package, tests, benchmarks and notebooks; the parameters cells against bloodcells.course
	$(VENV)/bin/ruff check bloodcells tests benchmarks notebooks
	$(VENV)/bin/bloodcells labs params --check

unit: install  ## every test (real-data checks too when BLOODCELLS_DATA_DIR is set)
	$(PY) -m pytest tests

params: install  ## write each notebook's parameters cell from bloodcells.course
	$(VENV)/bin/bloodcells labs params

notebooks: install  ## the notebooks under nbval, as a student runs them (quick mode, SYNTHETIC data, offline)
	rm -rf $(NBVAL_DIR) && mkdir -p $(NBVAL_DIR)
	for nb in notebooks/[0-9][0-9]_*.ipynb; do \
	  case $$nb in *02_*) smaller="-p max_train_samples 2000";; *) smaller="";; esac; \
	  $(VENV)/bin/papermill --prepare-only -p quick True -p data synthetic $$smaller "$$nb" \
	    "$(NBVAL_DIR)/$$(basename $$nb)" 2>/dev/null || exit 1; done
	env -u BLOODCELLS_DATA_DIR $(PY) -m pytest $(NBVAL) $(NBVAL_DIR)

outputs: install  ## re-run every notebook (quick mode, real data in $BLOODCELLS_DATA_DIR), store its outputs and student edition
	$(VENV)/bin/bloodcells labs publish

release: install  ## student and solution editions into release/ (nbgrader); OUT=folder to choose another
	$(VENV)/bin/bloodcells labs release --out $(or $(OUT),release)

site: install  ## the course website into site/ (Sphinx + MyST-NB over the shipped student notebooks and docs/; offline)
	rm -rf site && $(VENV)/bin/sphinx-build -q -b html docs site && rm -rf jupyter_execute  # MyST-NB's scratch copy of the figures

lab: install  ## JupyterLab on the student edition (notebooks/student); instructors: jupyter lab notebooks
	$(VENV)/bin/jupyter lab notebooks/student

clean:  ## remove run folders and generated synthetic data (not .venv, not downloads)
	rm -rf runs notebooks/runs data/synthetic
