# The two commands of the README, and a few for contributors.
#   make lab    set up, then open the course in JupyterLab
#   make test   set up, then run every test and every notebook
# Both create .venv (or reuse it while pyproject.toml is unchanged) with pinned packages.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888

.PHONY: setup lab test lint sync benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): on Debian/Ubuntu run 'sudo apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test]'
	@touch $(STAMP)
	@echo "Environment ready in $(VENV)."

# --allow-root only where you are root (containers, some cloud machines).
lab: setup
	$(BIN)/jupyter lab --ServerApp.port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_setup.ipynb

# CPU pass over every notebook (nbval), unit tests, and a GPU pass where one exists
# (tests/test_notebooks_gpu.py; reported as skipped with its reason where there is none).
test: setup
	COURSE_DEVICE=cpu MPLBACKEND=Agg $(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check course_utils tests benchmarks notebooks/*.py

# After editing a notebook: update its pair (.ipynb <-> .py) and strip outputs.
sync: setup
	$(BIN)/jupytext --sync notebooks/*.py
	$(BIN)/jupyter nbconvert --log-level=WARN --clear-output --inplace notebooks/*.ipynb

benchmark: setup
	$(BIN)/python benchmarks/notebook_times.py

clean:
	rm -rf $(VENV) .pytest_cache
