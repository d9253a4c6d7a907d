"""worker beats: which worker processes are running

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 05:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import relayflow.storage.types

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'worker_beats',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('started_at', relayflow.storage.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column('seen_at', relayflow.storage.types.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_beats')),
    )


def downgrade() -> None:
    op.drop_table('worker_beats')
