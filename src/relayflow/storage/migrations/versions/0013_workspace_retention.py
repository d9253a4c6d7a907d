"""workspace retention: how long each workspace keeps its history, failures apart

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 02:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workspaces') as batch:
        batch.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('failed_retention_days', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workspaces') as batch:
        batch.drop_column('failed_retention_days')
        batch.drop_column('retention_days')
