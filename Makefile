# The two set-up commands of README.md. Each creates the virtual environment when it is missing
# (or when pyproject.toml changed), so both work from a clean clone.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench moments

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/engine dev

lint: $(STAMP)
	$(VENV)/bin/ruff check engine plugins tests bench examples

# the whole suite, then the plugin and end-to-end tests at today's hard moment (README: "Hard moments")
test: lint
	$(VENV)/bin/pytest -q
	$(VENV)/bin/python -m engine.testing.hard_moments --rotate

moments: $(STAMP)
	$(VENV)/bin/python -m engine.testing.hard_moments --all

bench: $(STAMP)
	$(VENV)/bin/python -m bench
