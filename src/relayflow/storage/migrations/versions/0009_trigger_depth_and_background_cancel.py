"""trigger depth on runs; background cancel marker on workflows

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import relayflow.storage.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Runs already in the database count as depth 0: their chains restart from there,
    # which can only allow a few more hops than the cap, never fewer.
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trigger_depth', sa.Integer(), server_default='0',
                                      nullable=False))
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'cancel_before', relayflow.storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cancel_total', sa.BigInteger(), server_default='0',
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('workflows', schema=None) as batch_op:
        batch_op.drop_column('cancel_total')
        batch_op.drop_column('cancel_before')
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.drop_column('trigger_depth')
