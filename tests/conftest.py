"""One suite, two databases: SQLite by default, PostgreSQL when
RELAYFLOW_TEST_DATABASE_URL is set (CI always sets it)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import Result
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from relayflow.cli import app
from relayflow.config import Settings, get_settings
from relayflow.services import auth as auth_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime, SecretCipher, network_allow_of
from relayflow.storage.db import make_engine, make_sessionmaker, normalize_url, session_scope
from relayflow.storage.migrate import upgrade
from relayflow.storage.models import Base
from tests.support import httpserver, smtpserver
from tests.support.flows import set_provider

PG_URL = os.environ.get("RELAYFLOW_TEST_DATABASE_URL")

# Argon2id with a small cost: still the real hash and verify, at a fraction of the time
# (the production cost takes ~0.2 s per hash, and most page tests add members and sign in).
auth_service.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
TEST_SECRET_KEY = "test-secret-key-not-for-production"


# Set by `make test` for its PostgreSQL pass: tests that never touch a database (neither
# `db_url` nor the template behind it among their fixtures) ran in the SQLite pass
# already and are left out; those marked postgres_only stay, whatever their fixtures (the
# read replica's test starts clusters of its own), as the SQLite pass skipped them.
DATABASE_TESTS_ONLY = os.environ.get("RELAYFLOW_TEST_DATABASE_ONLY") == "1"
DATABASE_FIXTURES = {"db_url", "_database_template"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_URL:
        if DATABASE_TESTS_ONLY:
            kept = [i for i in items
                    if DATABASE_FIXTURES.intersection(getattr(i, "fixturenames", ()))
                    or "postgres_only" in i.keywords]
            config.hook.pytest_deselected(items=[i for i in items if i not in kept])
            items[:] = kept
        return
    skip = pytest.mark.skip(reason="PostgreSQL only: set RELAYFLOW_TEST_DATABASE_URL")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database made once per session: a SQLite file to copy, or a PostgreSQL
    database (`relayflow_test_<pid>`) that each test truncates."""
    if not PG_URL:
        path = tmp_path_factory.mktemp("template") / "template.db"
        upgrade(f"sqlite:///{path}")
        yield str(path)
        return
    name = f"relayflow_test_{os.getpid()}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db_url(_database_template: str, tmp_path: Path) -> str:
    if not PG_URL:
        target = tmp_path / "relayflow.db"
        shutil.copy(_database_template, target)
        return f"sqlite:///{target}"
    engine = create_engine(normalize_url(_database_template))
    with engine.begin() as conn:
        # Every table an earlier test wrote to is emptied by DELETE: a tenth of the time of
        # one TRUNCATE of them all, which makes new files for every table and index (90 ms
        # a test). Triggers and foreign keys stay quiet meanwhile (the replica role), so no
        # delete writes a count change and the order does not matter.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for name in conn.execute(text(_WRITTEN)).scalars().all():
            conn.exec_driver_sql(f"DELETE FROM {name}")
    engine.dispose()
    return _database_template


# Every table, with the one no model declares: the runs' search index (migration 0024).
TABLES = [t.name for t in Base.metadata.sorted_tables] + ["run_search"]
_WRITTEN = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT FROM {name})"
                              for name in TABLES)


@pytest.fixture
def is_postgres(db_url: str) -> bool:
    return db_url.startswith("postgres")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
        secret_key_file=str(tmp_path / "secret.key"),
        lease_seconds=5,
        heartbeat_seconds=1,
        poll_seconds=0.05,
        # Tests talk to servers on loopback, which outbound requests refuse by default.
        # The SSRF tests (tests/services/test_egress_canary.py) use settings without this.
        network_allow="127.0.0.0/8,::1",
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    engine = make_engine(settings.database_url)
    rt = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(TEST_SECRET_KEY),
                 network_allow=network_allow_of(settings))
    yield rt
    engine.dispose()


class WorkspaceHandle:
    def __init__(self, workspace_id: uuid.UUID, slug: str, api_key: str) -> None:
        self.id, self.slug, self.api_key = workspace_id, slug, api_key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def make_workspace(runtime: Runtime, slug: str) -> WorkspaceHandle:
    with session_scope(runtime.sessions) as session:
        ws, key = workspace_service.create(session, slug=slug, name=None, now=datetime.now(UTC))
        return WorkspaceHandle(ws.id, ws.slug, key)


@pytest.fixture
def workspace(runtime: Runtime) -> WorkspaceHandle:
    return make_workspace(runtime, "acme")


@pytest.fixture
def other_workspace(runtime: Runtime) -> WorkspaceHandle:
    return make_workspace(runtime, "globex")


@pytest.fixture
def smtp_sink(runtime: Runtime, workspace: WorkspaceHandle) -> Iterator[smtpserver.SmtpSink]:
    """A real SMTP server on 127.0.0.1, set as the workspace's email provider."""
    server = smtpserver.start()
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": server.port, "tls": "none",
        "from": "ops@relay.test"})
    yield server
    server.close()


@pytest.fixture
def http_server() -> Iterator[httpserver.TestHttpServer]:
    server = httpserver.start()
    yield server
    server.close()


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """Runs `relayflow` commands in this process against the test database."""
    monkeypatch.setenv("RELAYFLOW_DATABASE_URL", db_url)
    monkeypatch.setenv("RELAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()
