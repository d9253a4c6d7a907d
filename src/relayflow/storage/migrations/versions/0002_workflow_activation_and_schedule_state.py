"""workflow activation and schedule state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:23:39.531224
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import relayflow.storage.types

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activated_at', relayflow.storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('schedule_last_tick', relayflow.storage.types.UTCDateTime(timezone=True), nullable=True))
    # Workflows already ACTIVE were activated no later than their last update; without a
    # value their schedule could fire a tick from before the upgrade.
    op.execute("UPDATE workflows SET activated_at = updated_at WHERE status = 'ACTIVE'")


def downgrade() -> None:
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.drop_column('schedule_last_tick')
        batch_op.drop_column('activated_at')
