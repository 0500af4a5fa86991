# make run   - installs what is missing, starts Caredesk on SQLite with the demo business
# make test  - installs what is missing (Debian packages included), runs every test
# make check - lint + types + tests
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check lint types format deps system-deps assets bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

deps: $(STAMP)

system-deps:
	@bash scripts/system_deps.sh

assets:
	@if [ -x scripts/build_frontend.sh ]; then bash scripts/build_frontend.sh; fi

run: deps assets
	@CAREDESK_DATABASE_URL=$${CAREDESK_DATABASE_URL:-sqlite:///var/caredesk.db} $(VENV)/bin/caredesk serve --demo

test: deps system-deps assets
	@bash scripts/test.sh

lint: deps
	@$(VENV)/bin/ruff check src tests bench scripts
	@$(VENV)/bin/ruff format --check src tests bench scripts

format: deps
	@$(VENV)/bin/ruff format src tests bench scripts
	@$(VENV)/bin/ruff check --fix src tests bench scripts

types: deps
	@$(VENV)/bin/mypy

check: lint types test

bench: deps
	@$(PY) bench/inbound.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
