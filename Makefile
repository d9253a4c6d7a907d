PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-sqlite test-postgres bench lint audit clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "== installing relayflow and its dependencies into $(VENV) (about a minute the first time)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "   pip, setuptools"
	@$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	@echo "   relayflow and its dependencies, with the test tools"
	@$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)
	@echo "== installed"

# Migrates the database, seeds the demo workspace on first start, serves on :8000.
run: install
	@echo "== migrating the database"
	@$(BIN)/relayflow migrate
	@echo "== the demo workspace (made once, in a few seconds)"
	@$(BIN)/relayflow demo
	@echo "== serving (Ctrl-C stops it)"
	@$(BIN)/relayflow serve

# The whole suite on SQLite; with RELAYFLOW_TEST_DATABASE_URL set, a PostgreSQL pass runs
# beside it (one per core), its output printed after the SQLite pass's. The PostgreSQL
# pass runs only the tests that use a database (tests/conftest.py): the others (the
# engine, the egress policy, template limits, ...) gave their answer in the first. The
# database-fault tests run first, alone on the machine (about 70 s): each scenario strikes
# while runs are under way, and beside two suites on two cores a worker can start so slowly
# that the runs are all finished when the strike comes (a cut 1.6 s late finds none left). The
# browser tests run in the SQLite pass only: what they add is the browser;
# every page is also rendered against both databases by the page tests (tests/web/pages).
DB_FAULTS := tests/faults/test_db_faults.py

test: install
	@if [ -z "$$RELAYFLOW_TEST_DATABASE_URL" ]; then \
		$(BIN)/python -m pytest || exit 1; \
		echo "RELAYFLOW_TEST_DATABASE_URL is not set: PostgreSQL pass skipped"; \
	else \
		work=$$(mktemp -d); \
		echo "== database faults ($(DB_FAULTS), PostgreSQL), alone"; \
		$(BIN)/python -m pytest -p no:cacheprovider --basetemp=$$work/faults $(DB_FAULTS); \
		dbfaults=$$?; \
		echo "== PostgreSQL pass started beside this one ($$RELAYFLOW_TEST_DATABASE_URL)"; \
		RELAYFLOW_TEST_DATABASE_ONLY=1 $(BIN)/python -m pytest -m "not browser" --durations=20 \
			-p no:cacheprovider --basetemp=$$work/postgres --ignore=$(DB_FAULTS) \
			> $$work/postgres.log 2>&1 & \
		pg=$$!; \
		env -u RELAYFLOW_TEST_DATABASE_URL $(BIN)/python -m pytest -p no:cacheprovider \
			--basetemp=$$work/sqlite --ignore=$(DB_FAULTS); sqlite=$$?; \
		wait $$pg; postgres=$$?; \
		echo "== PostgreSQL pass ($$RELAYFLOW_TEST_DATABASE_URL), tests that use a database"; \
		cat $$work/postgres.log; rm -rf $$work; \
		test $$sqlite -eq 0 && test $$postgres -eq 0 && test $$dbfaults -eq 0; \
	fi

bench: install
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/e2e.py --mode sqlite
	$(BIN)/python bench/e2e.py --mode postgres
	$(BIN)/python bench/history.py --runs 100000
	$(BIN)/python bench/history.py --runs 100000 --database postgres

lint: install
	$(BIN)/python -m ruff check src tests bench tools
	$(BIN)/python -m mypy src/relayflow/engine src/relayflow/storage src/relayflow/errors.py
	$(BIN)/python -m bandit -q -r src -ll
	$(BIN)/lint-imports

# Installed distributions against PyPI's advisories (see the script for what it can and
# cannot see from a machine that reaches only the package registry).
audit: install
	$(BIN)/python tools/audit_dependencies.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
