# The two set-up commands of README.md. Each creates the virtual environment when it is missing
# (or when pyproject.toml changed), so both work from a clean clone.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: dev test lint bench moments screenshots

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

# the README's screenshots, made by the browser tests (needs Debian's chromium and fonts-noto-cjk)
screenshots: $(STAMP)
	@command -v chromium >/dev/null || { echo "apt-get install -y chromium fonts-noto-cjk fonts-noto-color-emoji"; exit 1; }
	ENGINE_SCREENSHOTS=docs/images $(VENV)/bin/pytest -q tests/feishu/test_standin_outbox_browser.py \
		tests/plugins/asset_loan/test_asset_loan_scan_browser.py
