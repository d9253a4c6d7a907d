"""bulk operations: retry or cancel every run a filter matched, frozen, resumable

bulk_operations holds what was asked (action, version, filter, reason, actor, rate) and
the counts as workers act; bulk_items the runs matched when it was made, one row each,
with the state each ends in. The partial index holds only the items still to act on.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 16:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relayflow.storage.types import JSONType, UTCDateTime

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'PENDING'")


def upgrade() -> None:
    op.create_table(
        "bulk_operations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filter", JSONType, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"],
                                name="fk_bulk_operations_workspace_id_workspaces",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_bulk_operations"),
    )
    op.create_index("ix_bulk_operations_ws_created", "bulk_operations",
                    ["workspace_id", "created_at"])
    op.create_table(
        "bulk_items",
        sa.Column("operation_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result_run_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("acted_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["operation_id"], ["bulk_operations.id"],
                                name="fk_bulk_items_operation_id_bulk_operations",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("operation_id", "run_id", name="pk_bulk_items"),
    )
    op.create_index("ix_bulk_items_pending", "bulk_items", ["operation_id", "run_id"],
                    sqlite_where=_PENDING, postgresql_where=_PENDING)


def downgrade() -> None:
    op.drop_table("bulk_items")
    op.drop_table("bulk_operations")
