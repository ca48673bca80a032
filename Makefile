# One-command entry points. `make run` and `make test` create .venv and install phasewatch
# first (CPU torch pinned by constraints.txt), so both work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test slow lint bench docs notebooks docs-test

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ray,evals,hf,lightning,import,tl,docs]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/phasewatch run grokking

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

test: lint
	$(VENV)/bin/pytest

slow: $(STAMP)
	$(VENV)/bin/pytest -m slow

bench: $(STAMP)
	$(PY) bench/grokking.py

# The documentation site, strict (a broken link or a missing reference fails): site/index.html.
# It renders the notebooks with the outputs stored in them (make notebooks refreshes them).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Run every example notebook top to bottom (nbmake; one torch thread) and store the fresh
# outputs in it, which make docs then shows.
notebooks: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -p no:cacheprovider --nbmake --overwrite \
		--nbmake-timeout=300 examples/notebooks

# The docs' runnable shell tours, exactly as printed (tests/unit/test_docs_runnable.py).
docs-test: $(STAMP)
	$(VENV)/bin/pytest -p no:cacheprovider -m docs tests/unit/test_docs_runnable.py
