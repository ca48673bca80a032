# One-command entry points. `make run` and `make test` create .venv and install phasewatch
# first (CPU torch pinned by constraints.txt), so both work on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test slow lint bench

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ray,evals,hf,lightning,import,tl]'
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
