# The two commands of the README: `make book` and `make test`. Both set themselves up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Offline by construction: the model comes from a PyPI package, never from a hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
# One embedding cache for the build and the tests, inside the build folder.
export QUANTBOOK_CACHE ?= $(CURDIR)/_build/quantbook-cache
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test lint unit notebooks browser bench slides answer-key instructor grade clean

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

vendor/.installed: package.json package-lock.json scripts/vendor_assets.py $(VENV)/.installed
	npm ci --no-audit --no-fund --loglevel=error
	$(PY) scripts/vendor_assets.py
	@touch $@

# The execution cache is keyed on notebook code only: when the package changes (an explorer's
# JavaScript, a formula), executed pages must be recomputed, so the cache is dropped.
PACKAGE_FILES := $(shell find src/quantbook -type f -not -path '*/__pycache__/*')
_build/.package-stamp: $(PACKAGE_FILES)
	rm -rf _build/.jupyter_cache _build/jupyter_execute
	@mkdir -p _build && touch $@

# The slides are published with the site (_build/html/slides/), from the executed chapters.
book: $(VENV)/.installed vendor/.installed _build/.package-stamp
	$(BIN)/jupyter-book build . --all --builder html -W -n --keep-going
	$(PY) scripts/make_slides.py --output _build/html/slides
	@echo
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"

# ruff for the code; the GitHub workflows validated against their schema (bundled, offline).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

unit: $(VENV)/.installed vendor/.installed
	$(BIN)/pytest -n 2 -m "not browser" tests

notebooks: $(VENV)/.installed
	$(BIN)/pytest -n 2 --nbmake --nbmake-timeout=1200 notebooks

browser: book
	$(BIN)/pytest -m browser tests

# The notebooks run twice: in the book build, and alone in a Colab-like venv under nbmake
# (tests/test_colab.py). Both share the embedding cache, so the model embeds the corpus once.
test: lint book instructor
	$(BIN)/pytest -n 2 --dist loadfile tests

# One reveal.js deck per chapter, offline: _build/html/slides/index.html (made by `make book`)
slides: book

# The graded lab and homework from their Otter sources (course/): student notebooks, keys and
# autograders in _build/course/<name>/; fails if a published student notebook is stale.
answer-key: $(VENV)/.installed
	$(PY) scripts/make_answer_key.py --check

# The instructor edition (keys, bank, rubrics, slide notes): never deployed with the website.
instructor: $(VENV)/.installed
	$(PY) course/make_instructor.py

# Grade a folder of submitted notebooks with Otter-Grader, no Docker:
#   make grade SUBMISSIONS=path/to/folder [ASSIGNMENT=lab|hw3]  ->  _build/grades/<name>/
ASSIGNMENT ?= lab
grade: $(VENV)/.installed
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder [ASSIGNMENT=lab|hw3]"; exit 2; }
	$(PY) course/grade.py "$(SUBMISSIONS)" --assignment $(ASSIGNMENT)

bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

clean:
	rm -rf _build vendor node_modules
