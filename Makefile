# Every target that needs Python creates .venv first, so a fresh clone needs nothing but python3 (>= 3.11).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv test lint demo bench clean

all: lint test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check syncd tests migrations bench
	$(BIN)/ruff format --check syncd tests migrations bench
	$(BIN)/mypy syncd
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

demo: $(STAMP)
	$(BIN)/syncd demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

bench: $(STAMP)
	$(BIN)/python bench/graph_read.py
	$(BIN)/python bench/store_save.py
