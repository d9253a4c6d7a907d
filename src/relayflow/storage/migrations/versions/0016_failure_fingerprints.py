"""failure fingerprints: each failed run and failed or bounced attempt names its cause

1. workflow_runs and delivery_attempts get `fingerprint` (engine.fingerprint), with an
   index that holds only the rows that have one (failures: a few in a hundred), so that
   /failures groups them and /runs?fingerprint= lists them without reading the rest. On
   PostgreSQL the column and the index are made on the partitioned table, and each
   partition, present or future, gets them.
2. failure_groups describes each cause once (kind, workflow, node, error class, the
   normalised pattern and a sample error).
3. The index of runs' retry_of holds only retries (ix_runs_retry_of): the unresolved
   counts walk it whole, and it was as large as the table, every run's NULL included.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 15:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relayflow.storage.types import UTCDateTime

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_HAS = sa.text("fingerprint IS NOT NULL")
_INDEXES = (("workflow_runs", "ix_runs_ws_fingerprint_created"),
            ("delivery_attempts", "ix_deliveries_ws_fingerprint_created"))


def upgrade() -> None:
    for table, index in _INDEXES:
        op.add_column(table, sa.Column("fingerprint", sa.String(16), nullable=True))
        op.create_index(index, table, ["workspace_id", "fingerprint", "created_at", "id"],
                        sqlite_where=_HAS, postgresql_where=_HAS)
    op.drop_index("ix_workflow_runs_retry_of", table_name="workflow_runs")
    op.create_index("ix_runs_retry_of", "workflow_runs", ["retry_of"],
                    sqlite_where=sa.text("retry_of IS NOT NULL"),
                    postgresql_where=sa.text("retry_of IS NOT NULL"))
    op.create_table(
        "failure_groups",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("workflow_id", sa.Uuid(), nullable=True),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("node_type", sa.String(32), nullable=True),
        sa.Column("error_class", sa.String(64), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=False),
        sa.Column("sample_error", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name="fk_failure_groups_workspace_id_workspaces",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "fingerprint", name="pk_failure_groups"),
    )


def downgrade() -> None:
    op.drop_table("failure_groups")
    op.drop_index("ix_runs_retry_of", table_name="workflow_runs")
    op.create_index("ix_workflow_runs_retry_of", "workflow_runs", ["retry_of"])
    for table, index in _INDEXES:
        op.drop_index(index, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("fingerprint")
