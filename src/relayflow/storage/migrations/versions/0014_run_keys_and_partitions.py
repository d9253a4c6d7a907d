"""run keys and monthly partitions: history that leaves a month at a time

1. `run_keys` holds the run each (workflow, idempotency key) opened, filled from the runs
   that have a key; the unique constraint on workflow_runs goes (both databases). A
   partitioned table can hold no unique key without the column it is split by.
2. PostgreSQL only: workflow_runs and delivery_attempts become partitioned by month of id,
   run_steps by month of run_id (storage/partitions.py), with a default partition each.
   Each table is rebuilt: its definition (columns, keys, indexes, foreign keys in and out,
   triggers) is read from the catalog, the table renamed, the partitioned one made from
   it, the rows copied, and the definition put back. run_steps loses its primary key on
   id: its rows are found by (run_id, seq), its unique key.

The upgrade copies every run, step and attempt once: its time grows with the history
(1,000,000 runs with their 5,000,000 steps: see docs/scaling.md).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 05:30:00
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from relayflow.storage import partitions

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_KEY = "uq_workflow_runs_workflow_id_idempotency_key"
# The order matters only for speed: run_steps' foreign key to workflow_runs is checked
# once, when the second of the two is rebuilt.
_ORDER = ("workflow_runs", "run_steps", "delivery_attempts")
# The months made from the data are at most this many (older ids go to the default).
_MAX_MONTHS = 240


def upgrade() -> None:
    op.create_table(
        'run_keys',
        sa.Column('workflow_id', sa.Uuid(), nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=False),
        sa.Column('run_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'],
                                name=op.f('fk_run_keys_run_id_workflow_runs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('workflow_id', 'idempotency_key', name=op.f('pk_run_keys')),
    )
    op.create_index(op.f('ix_run_keys_run_id'), 'run_keys', ['run_id'], unique=False)
    op.execute("INSERT INTO run_keys (workflow_id, idempotency_key, run_id) "
               "SELECT workflow_id, idempotency_key, id FROM workflow_runs "
               "WHERE idempotency_key IS NOT NULL")
    if op.get_bind().dialect.name != "postgresql":
        with _triggers_kept("workflow_runs"), op.batch_alter_table("workflow_runs") as batch:
            batch.drop_constraint(_KEY, type_="unique")
        return
    op.drop_constraint(_KEY, "workflow_runs", type_="unique")
    first, last = _months()
    for table in _ORDER:
        _rebuild(table, partitioned=True, first=first, last=last,
                 leave={"pk_run_steps"} if table == "run_steps" else set())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _ORDER:
            _rebuild(table, partitioned=False)
        op.create_primary_key("pk_run_steps", "run_steps", ["id"])
        op.create_unique_constraint(_KEY, "workflow_runs", ["workflow_id", "idempotency_key"])
    else:
        with _triggers_kept("workflow_runs"), op.batch_alter_table("workflow_runs") as batch:
            batch.create_unique_constraint(_KEY, ["workflow_id", "idempotency_key"])
    op.drop_index(op.f('ix_run_keys_run_id'), table_name='run_keys')
    op.drop_table('run_keys')


class _triggers_kept:
    """SQLite's batch mode copies a table and drops the old one, and its triggers (the
    rollup's, 0011) with it: they are made again on the copy."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.saved: list[str] = []

    def __enter__(self) -> None:
        self.saved = list(op.get_bind().scalars(sa.text(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
            {"t": self.table}))

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            for statement in self.saved:
                op.execute(statement)


def _months() -> tuple[datetime, datetime]:
    """From the month of the oldest UUIDv7 id among the three tables (or now) to
    partitions.MONTHS_AHEAD months past now."""
    now = datetime.now(UTC)
    oldest = now
    for table in _ORDER:
        column = partitions.TABLES[table]
        found = op.get_bind().scalar(sa.text(
            f"SELECT {column} FROM {table} "  # nosec B608 (names from this module)
            f"WHERE substr({column}::text, 15, 1) = '7' ORDER BY {column} LIMIT 1"))
        if found is not None:
            at = datetime.fromtimestamp((uuid.UUID(str(found)).int >> 80) / 1000, UTC)
            oldest = min(oldest, at)
    oldest = max(oldest, now - timedelta(days=31 * _MAX_MONTHS))
    return oldest, now + timedelta(days=31 * partitions.MONTHS_AHEAD)


def _rebuild(table: str, *, partitioned: bool, first: datetime | None = None,
             last: datetime | None = None, leave: set[str] | None = None) -> None:
    """Make `table` again, partitioned or not, with its rows and its whole definition but
    the constraints named in `leave`."""
    bind = op.get_bind()
    run = bind.exec_driver_sql  # the SQL as it is: definitions hold colons and quotes
    oid = {"t": table}
    constraints = bind.execute(sa.text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(:t) AND conparentid = 0 AND contype IN ('p', 'u', 'f') "
        "ORDER BY contype DESC, conname"), oid).all()
    incoming = bind.execute(sa.text(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE confrelid = to_regclass(:t) AND conparentid = 0 "
        "AND contype = 'f' AND conrelid <> confrelid ORDER BY 1, 2"), oid).all()
    indexes = bind.execute(sa.text(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(:t) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY 1"), oid).all()
    triggers = bind.execute(sa.text(
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal AND tgparentid = 0 ORDER BY 1"),
        oid).all()
    old = f"{table}_before_0014"
    for referrer, constraint, _ in incoming:
        run(f'ALTER TABLE {referrer} DROP CONSTRAINT "{constraint}"')
    for trigger, _ in triggers:
        run(f'DROP TRIGGER "{trigger}" ON {table}')
    for constraint, _ in constraints:
        run(f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"')
    for index, _ in indexes:
        run(f'DROP INDEX "{index}"')
    run(f"ALTER TABLE {table} RENAME TO {old}")
    like = f"LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE"
    if partitioned:
        run(f"CREATE TABLE {table} ({like}) "
                   f"PARTITION BY RANGE ({partitions.TABLES[table]})")
        run(partitions.create_sql(table, None))
        assert first is not None and last is not None
        for month in partitions.months(first.date(), last.date()):
            run(partitions.create_sql(table, month))
    else:
        run(f"CREATE TABLE {table} ({like})")
    columns = ", ".join(f'"{c}"' for c in bind.scalars(sa.text(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum"), oid))
    run(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}")  # nosec B608
    run(f"DROP TABLE {old}")
    for constraint, definition in constraints:
        if constraint in (leave or ()):
            continue
        run(f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {definition}')
    for _, definition in indexes:
        run(definition.replace(" ON ONLY ", " ON "))
    for referrer, constraint, definition in incoming:
        run(f'ALTER TABLE {referrer} ADD CONSTRAINT "{constraint}" {definition}')
    for _, definition in triggers:
        run(definition)
