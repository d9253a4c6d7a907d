"""trigger events: triggers refused, and duplicates, recorded where they are decided

A webhook request refused (signature, replay, rate limit, invalid payload, a workflow not
ACTIVE) left no trace but its answer, and a duplicate only a count on the run it repeated.
Each now leaves a row: what "why not?" and a contact's timeline read.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relayflow.storage.types import UTCDateTime

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_HAS_CONTACT = sa.text("contact_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        'trigger_events',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('workspace_id', sa.Uuid(), nullable=False),
        sa.Column('workflow_id', sa.Uuid(), nullable=False),
        sa.Column('contact_id', sa.Uuid(), nullable=True),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('cause', sa.String(length=32), nullable=True),
        sa.Column('run_id', sa.Uuid(), nullable=True),
        sa.Column('at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
                                name=op.f('fk_trigger_events_workspace_id_workspaces'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_trigger_events')),
    )
    op.create_index('ix_trigger_events_ws_contact_at', 'trigger_events',
                    ['workspace_id', 'contact_id', 'at'],
                    sqlite_where=_HAS_CONTACT, postgresql_where=_HAS_CONTACT)
    op.create_index('ix_trigger_events_ws_at', 'trigger_events', ['workspace_id', 'at'])


def downgrade() -> None:
    op.drop_index('ix_trigger_events_ws_at', table_name='trigger_events')
    op.drop_index('ix_trigger_events_ws_contact_at', table_name='trigger_events')
    op.drop_table('trigger_events')
