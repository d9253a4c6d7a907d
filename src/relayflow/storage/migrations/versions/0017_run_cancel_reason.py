"""who canceled a run and why

1. workflow_runs gets `canceled_by` (who asked: "member:<email>", "api-key:<prefix>",
   "deactivation", "bulk:<operation id>", ...) and `cancel_reason`, set when the cancel is
   asked for (a run a worker holds keeps them while the worker stops it). On PostgreSQL
   the columns are added to the partitioned table, and every partition, present or
   future, gets them. Runs canceled before this revision have neither.
2. workflows gets `deactivated_by`: who last deactivated it, which the runs its background
   cancel stops give as their reason.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 15:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workflow_runs", sa.Column("canceled_by", sa.String(320), nullable=True))
    op.add_column("workflow_runs", sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.add_column("workflows", sa.Column("deactivated_by", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("deactivated_by")
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("cancel_reason")
        batch.drop_column("canceled_by")
