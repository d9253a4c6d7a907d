"""The migrations build exactly the schema the models declare, from nothing and from a
database an earlier release made, and they can be walked down and up again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    MetaData,
    String,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from relayflow.services import search
from relayflow.storage.db import make_engine
from relayflow.storage.migrate import alembic_config, downgrade, drift, upgrade
from relayflow.storage.models import (
    Base,
    DeliveryAttempt,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
    Workspace,
)
from relayflow.storage.repositories import rollup
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories.run import RunFilter
from tests.support.databases import empty_database


@pytest.fixture
def empty_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database beside the test database (same dialect, same server)."""
    with empty_database(db_url, tmp_path) as url:
        yield url


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return current


def _models_with(table: str, column: str, **changes: object) -> MetaData:
    """A copy of the models with one column changed, to show the comparison notices."""
    copy = MetaData(naming_convention=Base.metadata.naming_convention)
    for t in Base.metadata.sorted_tables:
        t.to_metadata(copy)
    for name, value in changes.items():
        setattr(copy.tables[table].c[column], name, value)
    return copy


class TestUpgradeFromEmpty:
    def test_every_migration_gives_the_models_schema(self, db_url):
        # db_url's database was built by running every migration from an empty one.
        head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
        assert _revision(db_url) == head
        assert drift(db_url) == []

    def test_a_column_type_differing_from_the_models_is_reported(self, db_url):
        changed = _models_with("run_steps", "node_id", type=String(32))
        [line] = drift(db_url, changed)
        assert line.startswith("modify_type run_steps.node_id")

    def test_a_server_default_differing_from_the_models_is_reported(self, db_url):
        changed = _models_with("delivery_attempts", "suppression_override",
                               server_default=None)
        [line] = drift(db_url, changed)
        assert line.startswith("modify_default delivery_attempts.suppression_override")

    # SQLite stores each pair alike (JSON text, naive datetime text, 64-bit integers).
    @pytest.mark.postgres_only
    @pytest.mark.parametrize(("table", "column", "plain"), [
        ("run_steps", "output", JSON()),  # JSONType is JSONB on PostgreSQL
        ("run_steps", "started_at", DateTime(timezone=False)),  # UTCDateTime is timestamptz
        ("run_steps", "duration_ms", Integer()),  # 0008 made it BIGINT
    ])
    def test_what_postgresql_stores_is_compared(self, db_url, table, column, plain):
        [line] = drift(db_url, _models_with(table, column, type=plain))
        assert line.startswith(f"modify_type {table}.{column}")


class TestDatabaseFromAnEarlyRelease:
    """0003 was released without delivery_attempts.suppression_override and edited later:
    a database made in between reported itself up to date yet lacked the column."""

    def _released_0003(self, url: str) -> None:
        upgrade(url, "0003")
        engine = make_engine(url)
        with engine.begin() as conn:
            ops = Operations(MigrationContext.configure(
                conn, opts={"render_as_batch": conn.dialect.name == "sqlite"}))
            with ops.batch_alter_table("delivery_attempts") as batch:
                batch.drop_column("suppression_override")
            workspace, attempt = uuid.uuid4(), uuid.uuid4()
            now = datetime(2026, 11, 24, 21, 10, tzinfo=UTC).replace(tzinfo=None)
            conn.execute(text("INSERT INTO workspaces (id, slug, name, created_at) "
                              "VALUES (:id, 'early', 'Early', :now)"),
                         {"id": workspace.hex, "now": now} if conn.dialect.name == "sqlite"
                         else {"id": workspace, "now": now})
            conn.execute(text(
                "INSERT INTO delivery_attempts (id, workspace_id, step_seq, channel, provider, "
                "recipient, subject, body, status, attempt_number, created_at) VALUES "
                "(:id, :ws, 3, 'email', 'outbox', 'a@example.com', 's', 'b', 'SENT', 1, :now)"),
                {"id": attempt.hex, "ws": workspace.hex, "now": now}
                if conn.dialect.name == "sqlite" else {"id": attempt, "ws": workspace, "now": now})
        engine.dispose()

    def test_the_comparison_reports_the_missing_column(self, empty_url):
        self._released_0003(empty_url)
        upgrade(empty_url, "0007")
        assert "add_column delivery_attempts.suppression_override" in drift(empty_url)

    def test_upgrading_adds_the_column_and_keeps_the_rows(self, empty_url):
        self._released_0003(empty_url)
        upgrade(empty_url)
        assert drift(empty_url) == []
        engine = make_engine(empty_url)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT recipient, step_seq, suppression_override FROM delivery_attempts")).all()
        engine.dispose()
        assert [(r[0], r[1], bool(r[2])) for r in rows] == [("a@example.com", 3, False)]


def _one_run(url: str, slug: str = "kept", payload: dict | None = None) -> uuid.UUID:
    """A workspace, a workflow, its version and one run, written through the models; the
    workspace's id."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ws, wf, version = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Workspace.__table__).values(
            id=ws, slug=slug, name="Kept", created_at=now))
        conn.execute(insert(Workflow.__table__).values(
            id=wf, workspace_id=ws, key="k", name="K", created_at=now, updated_at=now))
        conn.execute(insert(WorkflowVersion.__table__).values(
            id=version, workspace_id=ws, workflow_id=wf, number=1, definition={},
            definition_hash="h", created_at=now))
        conn.execute(insert(WorkflowRun.__table__).values(
            id=uuid.uuid4(), workspace_id=ws, workflow_id=wf, version_id=version,
            trigger_type="manual", created_at=now, trigger_payload=payload or {}))
    engine.dispose()
    return ws


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                 for t in ("workflows", "workflow_versions", "workflow_runs")}
    engine.dispose()
    return found


class TestDowngrade:
    def test_walking_down_to_the_first_and_up_again_keeps_the_rows(self, empty_url):
        # SQLite drops a column by copying the table and dropping the old one (0009's and
        # 0002's downgrades do so to workflows): with foreign keys on, that drop cascaded to
        # every version and run.
        upgrade(empty_url)
        _one_run(empty_url)
        downgrade(empty_url, "0001")
        assert _counts(empty_url) == {"workflows": 1, "workflow_versions": 1,
                                      "workflow_runs": 1}
        upgrade(empty_url)
        assert _counts(empty_url) == {"workflows": 1, "workflow_versions": 1,
                                      "workflow_runs": 1}
        assert drift(empty_url) == []

    def test_down_to_base_and_up_again_gives_the_models_schema(self, empty_url):
        upgrade(empty_url)
        downgrade(empty_url, "base")
        engine = make_engine(empty_url)
        with engine.connect() as conn:
            left = set(inspect(conn).get_table_names()) - {"alembic_version"}
        engine.dispose()
        assert left == set()
        upgrade(empty_url)
        assert drift(empty_url) == []


class TestLeanerRuns:
    """0019: on SQLite, runs and the rollups keep no rowid (their key is their order), and
    the rebuild keeps every row, index and trigger; on both, the parent index holds only
    runs with a parent."""

    def test_the_rebuild_keeps_rows_indexes_and_triggers(self, empty_url):
        upgrade(empty_url, "0018")
        _one_run(empty_url)
        before = _schema_of(empty_url)
        upgrade(empty_url)
        assert _counts(empty_url) == {"workflows": 1, "workflow_versions": 1,
                                      "workflow_runs": 1}
        after = _schema_of(empty_url)
        search = {f"run_search_{name}" for name in ("insert", "update", "delete")}  # 0024
        assert after["triggers"] == before["triggers"] | search
        assert after["indexes"] == (before["indexes"] - {"ix_workflow_runs_parent_run_id"}
                                    | {"ix_runs_parent_run_id"})
        _one_run(empty_url, "another")  # the insert trigger still writes its count change
        engine = make_engine(empty_url)
        with engine.connect() as conn:
            changes = conn.execute(text("SELECT count(*) FROM run_count_changes")).scalar_one()
        engine.dispose()
        assert changes == 2
        assert drift(empty_url) == []

    def test_runs_and_rollups_have_no_rowid_on_sqlite(self, empty_url):
        if not empty_url.startswith("sqlite"):
            pytest.skip("SQLite only: PostgreSQL tables have no rowid")
        upgrade(empty_url)
        engine = make_engine(empty_url)
        with engine.connect() as conn:
            for table in ("workflow_runs", "run_counts", "run_totals", "delivery_counts",
                          "delivery_totals"):
                with pytest.raises(OperationalError, match="no such column: rowid"):
                    conn.execute(text(f"SELECT rowid FROM {table}"))
        engine.dispose()

    def test_the_parent_index_holds_only_runs_with_a_parent(self, empty_url):
        upgrade(empty_url)
        engine = make_engine(empty_url)
        with engine.connect() as conn:
            found = inspect(conn).get_indexes("workflow_runs")
        engine.dispose()
        parent = [i for i in found if i["column_names"] == ["parent_run_id"]]
        assert [i["name"] for i in parent] == ["ix_runs_parent_run_id"]
        where = parent[0]["dialect_options"].get("sqlite_where",
                                                 parent[0]["dialect_options"].get(
                                                     "postgresql_where"))
        assert "parent_run_id IS NOT NULL" in str(where)


class TestFailureCounts:
    """0020: the failures already stored are counted once by hour and cause; from then on
    the triggers write each change's fingerprints for the fold."""

    def test_the_upgrade_counts_the_stored_failures_and_the_triggers_the_next(self, empty_url):
        upgrade(empty_url, "0019")
        _one_run(empty_url)
        engine = make_engine(empty_url)
        hour = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
        with engine.begin() as conn:
            conn.execute(text("UPDATE workflow_runs SET status = 'FAILED', "
                              "fingerprint = 'aaaaaaaaaaaaaaaa'"))
            ws, wf = conn.execute(select(WorkflowRun.workspace_id,
                                         WorkflowRun.workflow_id)).one()
            for n, status in enumerate(("BOUNCED", "BOUNCED", "SENT")):
                conn.execute(insert(DeliveryAttempt.__table__).values(
                    id=uuid.uuid4(), workspace_id=ws, workflow_id=wf, channel="email",
                    provider="outbox", recipient="a@example.com", status=status,
                    fingerprint=None if status == "SENT" else "bbbbbbbbbbbbbbbb",
                    created_at=datetime(2026, 12, 1, n, tzinfo=UTC)))
        upgrade(empty_url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT hour, fingerprint, failures "
                                     "FROM run_failure_counts")).all() == [
                (hour, "aaaaaaaaaaaaaaaa", 1)]
            assert sorted(conn.execute(text("SELECT hour, fingerprint, failures "
                                            "FROM delivery_failure_counts")).all()) == [
                (hour, "bbbbbbbbbbbbbbbb", 1), (hour + 3600, "bbbbbbbbbbbbbbbb", 1)]
            conn.execute(text("UPDATE workflow_runs SET fingerprint = 'cccccccccccccccc'"))
            assert conn.execute(text(
                "SELECT old_fingerprint, new_fingerprint FROM run_count_changes "
                "WHERE old_fingerprint IS NOT NULL")).all() == [
                ("aaaaaaaaaaaaaaaa", "cccccccccccccccc")]
        with Session(engine) as session, session.begin():
            while rollup.fold(session):
                pass
        with engine.connect() as conn:  # the changes of before the upgrade added nothing
            assert sorted(conn.execute(text("SELECT hour, fingerprint, failures "
                                            "FROM run_failure_counts")).all()) == [
                (hour, "aaaaaaaaaaaaaaaa", 0), (hour, "cccccccccccccccc", 1)]
        engine.dispose()
        assert drift(empty_url) == []


def _schema_of(url: str) -> dict[str, set[str]]:
    """The names of the indexes and triggers on workflow_runs and the rollups."""
    tables = ("workflow_runs", "run_counts", "run_totals", "delivery_counts", "delivery_totals")
    engine = make_engine(url)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(text(
                "SELECT type, name FROM sqlite_master WHERE type IN ('index', 'trigger') "
                "AND sql IS NOT NULL AND tbl_name IN " + str(tables))).all()
        else:
            rows = conn.execute(text(
                "SELECT 'index', indexname FROM pg_indexes WHERE tablename IN " + str(tables)
                + " UNION ALL SELECT 'trigger', tgname FROM pg_trigger t JOIN pg_class c "
                "ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND c.relname IN "
                + str(tables))).all()
    engine.dispose()
    return {"indexes": {n for t, n in rows if t == "index"},
            "triggers": {n for t, n in rows if t == "trigger"}}


class TestRunSearch:
    """0024: the runs stored before it are found by search after it, and the index follows
    every later insert, change and delete."""

    def _found(self, url: str, workspace_id: uuid.UUID, q: str) -> list[uuid.UUID]:
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                f = RunFilter(workspace_id=workspace_id, search=search.parse(q))
                return [row.run.id for row in run_repo.list_page(session, f, limit=10)]
        finally:
            engine.dispose()

    def test_runs_stored_before_are_found_after(self, empty_url):
        upgrade(empty_url, "0023")
        old = _one_run(empty_url, payload={"order": {"id": "ORD-77"}, "note": "early bird"})
        upgrade(empty_url)
        assert len(self._found(empty_url, old, "ORD-77")) == 1
        assert len(self._found(empty_url, old, "order.id:ord-77 bird")) == 1
        assert self._found(empty_url, old, "ORD-78") == []
        new = _one_run(empty_url, "later", payload={"order": {"id": "ORD-78"}})
        [run_id] = self._found(empty_url, new, "ORD-78")
        engine = make_engine(empty_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE workflow_runs SET error = 'carrier strike' "
                              "WHERE id = :id"), {"id": run_id.hex if empty_url.startswith(
                                  "sqlite") else run_id})
        engine.dispose()
        assert self._found(empty_url, new, "carrier strike") == [run_id]
        engine = make_engine(empty_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM workflow_runs"))
            if empty_url.startswith("sqlite"):
                assert conn.execute(text("SELECT count(*) FROM run_search")).scalar_one() == 0
        engine.dispose()
        assert self._found(empty_url, new, "ORD-78") == []
