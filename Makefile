# Two commands do all the set-up on a fresh machine (python3 >= 3.11, pip, make):
#   make demo   virtualenv + install + run manifests/demo.yaml against the built-in simulator
#   make test   virtualenv + install + the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/runner run manifests/demo.yaml --simulate --state state/demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/mypy runner
	$(BIN)/ruff check runner tests

clean:
	rm -rf $(VENV) build *.egg-info
