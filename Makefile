# Two commands on a fresh machine: `make demo` and `make test`. Both create the virtual environment first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
export TRIAGE_HOME ?= var
DEMO_PORT ?= 3000

.PHONY: setup demo test lint unit e2e contract serve stop build clean lock browser

$(VENV)/.installed: requirements-dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync -q --python $(PY) requirements-dev.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	DEMO_PORT=$(DEMO_PORT) bash scripts/demo.sh

# The browser tests drive Debian's Chromium (never a downloaded browser); installed here when absent.
browser:
	bash scripts/install-browser.sh

test: setup lint browser
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

unit: setup
	$(PY) -m pytest -q -m "not e2e"

e2e: setup
	$(PY) -m pytest -q -m e2e

# The OpenAPI document against the real service: schemathesis, every check on every operation, must find
# nothing (part of `make test` too; this runs it alone and prints schemathesis' summary).
contract: setup
	$(PY) -m pytest -q -s tests/test_contract_e2e.py

serve: setup
	$(VENV)/bin/bentoml serve serving.service:TriageService --host 127.0.0.1 --port $(DEMO_PORT)

stop:
	bash scripts/stop-server.sh

build: setup
	BENTOML_HOME=$(TRIAGE_HOME)/bentoml $(VENV)/bin/bentoml build .

# Re-resolve the pins after changing dependencies in pyproject.toml.
lock: setup
	$(UV) pip compile -q pyproject.toml --python-version 3.11 -o requirements.lock
	$(UV) pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
