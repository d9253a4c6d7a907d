"""delivery providers and attempt send state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:06:52.817548
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import relayflow.storage.types
from sqlalchemy.dialects import postgresql
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('providers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', relayflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', relayflow.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_providers_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_providers')),
    sa.UniqueConstraint('workspace_id', 'channel', name=op.f('uq_providers_workspace_id_channel'))
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_of', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('html', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('suppression_override', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('send_started_at', relayflow.storage.types.UTCDateTime(timezone=True), nullable=True))




def downgrade() -> None:

    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_column('send_started_at')
        batch_op.drop_column('suppression_override')
        batch_op.drop_column('html')
        batch_op.drop_column('retry_of')

    op.drop_table('providers')

