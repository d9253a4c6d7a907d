PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-sqlite test-postgres bench lint audit clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Migrates the database, seeds the demo workspace on first start, serves on :8000.
run: install
	$(BIN)/relayflow migrate
	$(BIN)/relayflow demo
	$(BIN)/relayflow serve

# The whole suite on SQLite, then on PostgreSQL when RELAYFLOW_TEST_DATABASE_URL is set.
# The second pass runs only the tests that use a database (tests/conftest.py): the others
# (the engine, the egress policy, template limits, ...) gave their answer in the first.
# The browser tests run in the first pass only: what they add is the browser; every page
# is also rendered against both databases by the page tests (tests/web/pages).
test: install
	env -u RELAYFLOW_TEST_DATABASE_URL $(BIN)/python -m pytest
	@if [ -n "$$RELAYFLOW_TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$RELAYFLOW_TEST_DATABASE_URL), tests that use a database"; \
		RELAYFLOW_TEST_DATABASE_ONLY=1 $(BIN)/python -m pytest -m "not browser"; \
	else \
		echo "RELAYFLOW_TEST_DATABASE_URL is not set: PostgreSQL pass skipped"; \
	fi

bench: install
	$(BIN)/python bench/engine.py

lint: install
	$(BIN)/python -m ruff check src tests bench tools
	$(BIN)/python -m mypy src/relayflow/engine src/relayflow/storage src/relayflow/errors.py
	$(BIN)/python -m bandit -q -r src -ll

# Installed distributions against PyPI's advisories (see the script for what it can and
# cannot see from a machine that reaches only the package registry).
audit: install
	$(BIN)/python tools/audit_dependencies.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
