# Safety and Security for Neural Networks: set-up, course, tests.
#   make lab    create .venv if needed, install the locked versions, open the course in JupyterLab
#   make test   same set-up, then run every test (unit tests + every lesson through nbval)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements-lock.txt
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: lab test setup data models outputs lint homework bench clean-venv
.DEFAULT_GOAL := lab

# The venv is (re)created from scratch when it is missing or when the lock file changed.
$(VENV)/.lock-installed: $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	cp $(LOCK) $@

$(VENV)/.course-lib-installed: $(VENV)/.lock-installed pyproject.toml
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.course-lib-installed

# nbgrader and its dependencies, for the tests of the teacher's cycle (tests/test_nbgrader.py)
$(VENV)/.teacher-installed: $(VENV)/.lock-installed requirements-teacher.txt
	$(BIN)/python -m pip install --quiet -r requirements-teacher.txt
	cp requirements-teacher.txt $@

lab: setup
	$(BIN)/jupyter lab --notebook-dir=lessons $(ROOT_FLAG)

test: setup $(VENV)/.teacher-installed
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check course_lib scripts tests benchmarks

# Maintainers only: rebuild the shipped data and weights (needs npm, apt-get and the registries).
data: setup
	$(BIN)/python scripts/build_data.py

models: setup
	$(BIN)/python scripts/train_models.py
	$(BIN)/python scripts/train_patch.py
	$(BIN)/python scripts/certify_smoothing.py

# Re-execute every lesson in place and clean it (no widget state, no absolute paths, contiguous counts).
outputs: setup
	$(BIN)/python scripts/run_lessons.py

# Student versions of the lessons (solutions removed) in student/.
homework: setup
	$(BIN)/python scripts/make_homework.py

# Side-by-side comparisons with the reference libraries, in their own venv (torchattacks pins old requests).
.venv-peers/.installed: $(LOCK) pyproject.toml
	rm -rf .venv-peers
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet --upgrade "pip>=24"
	.venv-peers/bin/python -m pip install --quiet $$(grep -E '^(torch|torchvision|numpy)==' $(LOCK))
	.venv-peers/bin/python -m pip install --quiet -e ".[peers]" $$(grep -E '^(torch|torchvision|numpy)==' $(LOCK))
	touch $@

bench: .venv-peers/.installed
	@ls benchmarks/[!_]*.py >/dev/null 2>&1 || { echo "no benchmarks yet"; exit 0; }
	for b in benchmarks/[!_]*.py; do .venv-peers/bin/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV) .venv-peers
