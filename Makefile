# workbench: `make help` lists the targets.
PY := .venv/bin/python
SETUP_STAMP := .venv/bin/python

.DEFAULT_GOAL := help
.PHONY: help setup test bench lab lint format lock clean notebooks-ci notebooks-full strip fuzz \
  notebooks-sync

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: ## Build or reuse the pinned venv (.venv) and register the `workbench` Jupyter kernel
	@bash scripts/setup-venv.sh

# Notebook runs share this checkout's workspace (exports are content-keyed caches).
NB_ENV := WORKBENCH_HOME=$(CURDIR)/.workbench TF_CPP_MIN_LOG_LEVEL=3

# nbval re-executes the *executed* copies: the committed notebooks carry no outputs to
# compare with, the papermill run's outputs are the reference, and the injected `ci`
# parameters travel with the copy. Only `# NBVAL_CHECK_OUTPUT` cells are compared
# (--nbval-lax); any cell that raises fails. Its headlines go to a scratch folder so the
# re-run does not overwrite the reports' numbers.
define NOTEBOOKS_CI
	$(NB_ENV) $(PY) -m workbench.cli notebooks run --profile ci --cell-timeout 900
	$(NB_ENV) WORKBENCH_REPORTS=$(CURDIR)/.workbench/nbval-reports $(PY) -m pytest -q \
	  -p no:cacheprovider --nbval-lax --nbval-kernel-name workbench \
	  --nbval-cell-timeout 900 reports/executed
endef

test: setup ## Set up if needed, then the unit tests, every notebook (ci profile) and nbval
	$(PY) -m pytest -q
	$(NOTEBOOKS_CI)

notebooks-ci: setup ## Run every notebook with the ci profile into reports/, then nbval on the copies
	$(NOTEBOOKS_CI)

notebooks-full: setup ## Run every notebook with the full profile (the real study; long, not in CI)
	$(NB_ENV) $(PY) -m workbench.cli notebooks run --profile full

strip: setup ## Remove outputs and execution counts from notebooks/ (nbstripout equivalent)
	$(PY) -m workbench.cli notebooks strip notebooks

# Each notebook is a pair (notebooks/jupytext.toml): <name>.py, the source a person edits,
# and <name>.ipynb, what papermill runs. `jupytext --sync` takes the newer file of each
# pair as the source and rewrites the other (the .ipynb keeps its outputs and cell ids);
# an .ipynb without its .py gets one.
NB_PY := $(wildcard notebooks/*.py)
NB_UNPAIRED := $(filter-out $(NB_PY:.py=.ipynb),$(wildcard notebooks/*.ipynb))

define NOTEBOOKS_SYNC
	$(PY) -m jupytext --sync $(NB_PY) $(NB_UNPAIRED)
	$(PY) -m workbench.cli notebooks strip notebooks
endef

notebooks-sync: setup ## After editing notebooks/*.py outside JupyterLab: update each paired .ipynb, then strip
	$(NOTEBOOKS_SYNC)

bench: setup ## Set up if needed, then run the quick CPU sweep of the tabular task and write reports/
	$(PY) -m workbench.cli bench --task tabular --quick
	$(PY) -m workbench.cli report --out reports

lab: setup ## Start JupyterLab with the workbench kernel
	$(NB_ENV) $(PY) -m jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

fuzz: setup ## Long fuzzing run (>= 100,000 inputs: parsers, command line, every model loader); writes reports/fuzz.json
	PYTHONPATH=$(CURDIR) $(PY) scripts/fuzz.py

lint: setup ## ruff lint and format check, and the import layers (pyproject.toml)
	$(PY) -m ruff check workbench exporters tests benchmarks notebooks
	$(PY) -m ruff format --check workbench exporters tests benchmarks notebooks
	PYTHONPATH=$(CURDIR) .venv/bin/lint-imports --no-logo

format: setup ## ruff format in place (then the notebooks' .ipynb follow their .py)
	$(PY) -m ruff format workbench exporters tests benchmarks notebooks
	$(NOTEBOOKS_SYNC)

lock: ## Re-resolve requirements/base.txt into requirements/lock.txt (needs the registries)
	rm -rf /tmp/workbench-lock && python3 -m venv /tmp/workbench-lock
	/tmp/workbench-lock/bin/python -m pip install --quiet -r requirements/base.txt
	{ sed -n '1,3p' requirements/lock.txt; /tmp/workbench-lock/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

clean: ## Remove the workspace (.workbench/) and generated reports
	rm -rf .workbench reports/*.html reports/*.png reports/*.json reports/executed reports/headlines
