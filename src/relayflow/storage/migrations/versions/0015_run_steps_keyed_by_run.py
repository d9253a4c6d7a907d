"""leaner history: run_steps keyed by (run_id, seq), no COMPLETED run in the status index

1. The unique (run_id, seq) becomes run_steps' primary key, and the id, unique by
   construction (UUIDv7), loses its index: no query finds a step by its id alone. On
   SQLite the table is rebuilt without a rowid, so the key is the table's own order and no
   second index repeats it (about 450 bytes a run of five steps: docs/scaling.md). On
   PostgreSQL the key's index is built anew over every partition (0014 had already
   dropped the one on id).
2. ix_runs_ws_status_created leaves COMPLETED runs out (WorkflowRun.status_in): most of
   a history, listed through the time index instead.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_UNIQUE, _KEY = "uq_run_steps_run_id_seq", "pk_run_steps"
_STATUS = "ix_runs_ws_status_created"
_STATUS_COLUMNS = ["workspace_id", "status", "created_at", "id"]
_NOT_COMPLETED = sa.text("status <> 'COMPLETED'")


def upgrade() -> None:
    op.drop_index(_STATUS, table_name="workflow_runs")
    op.create_index(_STATUS, "workflow_runs", _STATUS_COLUMNS, sqlite_where=_NOT_COMPLETED,
                    postgresql_where=_NOT_COMPLETED)
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint(_UNIQUE, "run_steps", type_="unique")
        op.create_primary_key(_KEY, "run_steps", ["run_id", "seq"])
        return
    with op.batch_alter_table("run_steps", recreate="always",
                              table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.drop_constraint(_UNIQUE, type_="unique")
        batch.drop_constraint(_KEY, type_="primary")
        batch.create_primary_key(_KEY, ["run_id", "seq"])


def downgrade() -> None:
    op.drop_index(_STATUS, table_name="workflow_runs")
    op.create_index(_STATUS, "workflow_runs", _STATUS_COLUMNS)
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint(_KEY, "run_steps", type_="primary")
        op.create_unique_constraint(_UNIQUE, "run_steps", ["run_id", "seq"])
        return
    with op.batch_alter_table("run_steps", recreate="always") as batch:
        batch.drop_constraint(_KEY, type_="primary")
        batch.create_primary_key(_KEY, ["id"])
        batch.create_unique_constraint(_UNIQUE, ["run_id", "seq"])
