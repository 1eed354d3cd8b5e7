# The two commands of the README, and a few for contributors.
#   make lab    set up, then open the course in JupyterLab: the learner's lab, in their working copy my-work/
#   make instructor-lab   the same JupyterLab with nbgrader's menus, at the solutions in notebooks/
#   make test   set up, then run every test and every notebook
#   make test-fast   the contributors' loop: the tests not marked slow (no notebook, training or browser)
#   make site   set up, then build the course website into _site/ (runs every notebook)
#   make release   rewrite student/ from notebooks/ (course_tools.grading)
#   make release VERSION=0.2.0   first set the course version (Colab cells and links clone tag v0.2.0)
#   make grade SUBMISSIONS=dir   grade a folder of submissions into ~/course-grading/<dir's name>/
#   make check NOTEBOOK=file     a learner's own score on the visible tests
# Each creates .venv (or reuses it while pyproject.toml is unchanged) with pinned packages:
# the course, its test extra and the instructors' toolkit (the tools extra).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
# pytest workers of `make test`: one per core (TEST_JOBS=1: one process)
TEST_JOBS ?= 2
# notebooks the site build runs at once: one per core (each kernel on COURSE_THREADS=1 thread)
SITE_JOBS ?= 2

.PHONY: setup lab instructor-lab work test test-fast browser sandbox site release grade check lint sync benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): on Debian/Ubuntu run 'sudo apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[test,tools]'
	@touch $(STAMP)
	@echo "Environment ready in $(VENV)."

# The learner's lab. The file browser starts at the repository root (my-work/, notebooks/ and
# student/ in view) and the first exercise notebook opens in the learner's working copy, $(WORK)/.
# The config folder .jupyter/ (on JUPYTER_CONFIG_PATH, before any other) turns off what learners
# do not need: nbgrader's server and lab extensions (the test and tools extras share .venv),
# jupytext's menus and launcher items (its server extension still keeps each notebook's .py pair
# in step), the news pop-up, and the folder notebooks/py/ of the notebooks' .py pairs (hide_globs:
# each lecture is listed once, as its .ipynb). --allow-root only where you are root (containers, some cloud
# machines). LAB_FLAGS: extra options for JupyterLab (the browser test passes --no-browser and a token).
LAB_CONFIG := JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}"
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: setup work
	$(LAB_CONFIG) $(BIN)/jupyter lab --ServerApp.port=$(PORT) --ServerApp.root_dir="$(CURDIR)" \
		$(ALLOW_ROOT) $(LAB_FLAGS) $(WORK)/00_setup.ipynb

# The learner's working copy of student/ (README, "Exercises"): each student notebook is copied
# into $(WORK)/ unless a notebook of that name is already there, so a notebook is copied once and
# never overwritten (a course update that adds a lecture adds only the new notebook).
# It also holds solutions/, a link to notebooks/: the course's solved notebooks, one click away.
WORK ?= my-work
work:
	@mkdir -p "$(WORK)"
	@for nb in student/*.ipynb; do \
		test -e "$(WORK)/$${nb#student/}" || { cp "$$nb" "$(WORK)/" && echo "copied $$nb to $(WORK)/"; }; \
	done
	@test -e "$(WORK)/solutions" || $(PYTHON) -c 'import os, sys; os.symlink(os.path.relpath("notebooks", sys.argv[1]), os.path.join(sys.argv[1], "solutions"))' "$(WORK)"

# The instructors' lab: every extension the environment has (nbgrader's Formgrader, Validate and
# Create Assignment included), at the solutions.
instructor-lab: setup
	$(BIN)/jupyter lab --ServerApp.port=$(PORT) --ServerApp.root_dir="$(CURDIR)" \
		$(ALLOW_ROOT) $(LAB_FLAGS) notebooks/00_setup.ipynb

# CPU pass over every notebook (nbval), unit tests, and a GPU pass where one exists
# (tests/test_notebooks_gpu.py; reported as skipped with its reason where there is none).
# Widgets are off in tests: the notebooks draw their static figures instead of sliders.
# Two pytest-xdist workers, one per core, each file whole on one worker (tests/conftest.py):
# TEST_JOBS=1 runs everything in one process.
test: setup browser sandbox
	COURSE_DEVICE=cpu COURSE_WIDGETS=0 MPLBACKEND=Agg $(BIN)/python -m pytest --durations=25 $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile)

# The contributors' loop, in about 2 minutes: unit tests without training, layout, notebook files,
# release, the grader on its tiny fixtures. Tests marked slow (notebooks under nbval, training
# challenges, grading course notebooks, the website, the browser, the Colab-like run) are left out.
test-fast: setup sandbox
	COURSE_DEVICE=cpu COURSE_WIDGETS=0 MPLBACKEND=Agg $(BIN)/python -m pytest tests -m "not slow" --durations=10 $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile)

# Debian packages the tests need, installed where we may (root with apt-get); else a note says
# what is skipped. $(call debian_tool,command,package,what it is for,what happens without it)
define debian_tool
@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing $(2) for $(3) (apt-get)..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "$(2) is missing: $(4) (sudo apt-get install $(2))."; \
	  fi; }
endef

browser:
	$(call debian_tool,chromium,chromium,the browser tests,the browser tests will be skipped)

sandbox:
	$(call debian_tool,bwrap,bubblewrap,the grader's sandbox,the grader will run without its sandbox)

site: setup
	$(BIN)/python -m course_tools.website --jobs $(SITE_JOBS)

# The instructors' grader (README, "For instructors"). `grade` needs SUBMISSIONS=dir;
# GRADE_FLAGS passes further options, e.g. GRADE_FLAGS="--source notebooks/02_bptt.ipynb --jobs 2".
release: setup
ifdef VERSION
	$(BIN)/python -m course_tools.colab --version $(VERSION)
	$(MAKE) sync
endif
	$(BIN)/python -m course_tools.grading release
ifdef VERSION
	@echo "Now commit what the release changed, and nothing else (grades live outside the repository):"
	@echo "  git add pyproject.toml README.md notebooks student && git commit -m 'Release v$(VERSION)'"
	@echo "then: git tag v$(VERSION) && git push origin v$(VERSION)"
endif

grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=dir"; exit 2; }
	$(BIN)/python -m course_tools.grading grade "$(SUBMISSIONS)" $(GRADE_FLAGS)

check: setup
	@test -n "$(NOTEBOOK)" || { echo "usage: make check NOTEBOOK=my-work/02_bptt.ipynb"; exit 2; }
	$(BIN)/python -m course_tools.grading check "$(NOTEBOOK)"

lint: setup
	$(BIN)/ruff check course_utils course_tools tests benchmarks notebooks/py/*.py

# After editing a notebook: update its pair (notebooks/NN_name.ipynb <-> notebooks/py/NN_name.py, the
# pairing each declares as formats: ipynb,py//py:percent), write the Colab set-up cell
# (course_tools/colab.py) into any notebook that lacks the current one, regenerate 00's table of
# helpers (course_tools/helper_table.py), and strip outputs.
sync: setup
	$(BIN)/jupytext --sync notebooks/py/*.py
	$(BIN)/python -m course_tools.colab
	$(BIN)/python -m course_tools.helper_table
	$(BIN)/jupytext --sync notebooks/py/*.py
	$(BIN)/jupyter nbconvert --log-level=WARN --clear-output --inplace notebooks/*.ipynb

benchmark: setup
	$(BIN)/python benchmarks/notebook_times.py

clean:
	rm -rf $(VENV) .pytest_cache _site test-artifacts
