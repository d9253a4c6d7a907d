"""leaner runs: no rowid for runs and the rollups on SQLite, a parent index of children only

1. On SQLite, workflow_runs and the four rollup tables are rebuilt without a rowid. Each
   kept a rowid table beside an index of its own key (the run's id; a rollup's whole
   primary key), so every key was stored twice, and every index of runs also carried the
   rowid. Without one, the key is the table's own order (about 90 bytes a run at 1,000,000
   runs: docs/scaling.md). Indexes and triggers are copied as they were.
2. The index of runs' parent_run_id holds only runs a TRIGGER_WORKFLOW step started
   (ix_runs_parent_run_id): the family of a run's page and its children are all it
   serves, and every other run's NULL was in it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 18:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_TABLES = ("workflow_runs", "run_counts", "run_totals", "delivery_counts", "delivery_totals")
_HAS_PARENT = sa.text("parent_run_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_workflow_runs_parent_run_id", table_name="workflow_runs")
    if op.get_context().dialect.name == "sqlite":
        for table in _TABLES:
            _rebuild(table, rowid=False)
    op.create_index("ix_runs_parent_run_id", "workflow_runs", ["parent_run_id"],
                    sqlite_where=_HAS_PARENT, postgresql_where=_HAS_PARENT)


def downgrade() -> None:
    op.drop_index("ix_runs_parent_run_id", table_name="workflow_runs")
    if op.get_context().dialect.name == "sqlite":
        for table in _TABLES:
            _rebuild(table, rowid=True)
    op.create_index("ix_workflow_runs_parent_run_id", "workflow_runs", ["parent_run_id"])


def _rebuild(table: str, *, rowid: bool) -> None:
    """SQLite's way to change a table (sqlite.org/lang_altertable.html, "other kinds of
    table schema changes"): a new table from the old one's own CREATE statement, the rows
    copied, the old one dropped, the new one renamed; then its indexes and triggers, from
    their own statements. Foreign keys are off while migrations run (storage/migrate.py),
    so the drop cascades to nothing, and the references of other tables, which name the
    table, find the new one."""
    conn = op.get_bind()
    create = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar_one()
    others = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
        "AND sql IS NOT NULL ORDER BY type, name", (table,)).scalars().all()
    head, _, _ = create.partition("(")
    body = create[len(head):].rstrip()
    if body.upper().endswith("WITHOUT ROWID"):
        body = body[:-len("WITHOUT ROWID")].rstrip()
    new = f"_new_{table}"
    for statement in (f'CREATE TABLE "{new}" {body}' + ("" if rowid else " WITHOUT ROWID"),
                      f'INSERT INTO "{new}" SELECT * FROM "{table}"',  # nosec B608: _TABLES
                      f'DROP TABLE "{table}"',
                      f'ALTER TABLE "{new}" RENAME TO "{table}"', *others):
        conn.exec_driver_sql(statement)  # as written: no bind parameters read into them
