# workbench: `make help` lists the targets.
PY := .venv/bin/python
SETUP_STAMP := .venv/bin/python

.DEFAULT_GOAL := help
.PHONY: help setup test bench lab lint format lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## Build or reuse the pinned venv (.venv) and register the `workbench` Jupyter kernel
	@bash scripts/setup-venv.sh

test: setup ## Set up if needed, then run the whole test suite
	$(PY) -m pytest -q

bench: setup ## Set up if needed, then run the quick CPU sweep of the tabular task and write reports/
	$(PY) -m workbench.cli bench --task tabular --quick
	$(PY) -m workbench.cli report --out reports

lab: setup ## Start JupyterLab with the workbench kernel
	$(PY) -m jupyter lab --notebook-dir=notebooks

lint: setup ## ruff lint and format check
	$(PY) -m ruff check workbench exporters tests benchmarks
	$(PY) -m ruff format --check workbench exporters tests benchmarks

format: setup ## ruff format in place
	$(PY) -m ruff format workbench exporters tests benchmarks

lock: ## Re-resolve requirements/base.txt into requirements/lock.txt (needs the registries)
	rm -rf /tmp/workbench-lock && python3 -m venv /tmp/workbench-lock
	/tmp/workbench-lock/bin/python -m pip install --quiet -r requirements/base.txt
	{ sed -n '1,3p' requirements/lock.txt; /tmp/workbench-lock/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > requirements/lock.txt.new
	mv requirements/lock.txt.new requirements/lock.txt

clean: ## Remove the workspace (.workbench/) and generated reports
	rm -rf .workbench reports/*.html reports/*.png
