"""trigger events and schedule ticks: what opened no run, recorded where it is decided

A webhook request refused (signature, replay, rate limit, invalid payload, a workflow not
ACTIVE) left no trace but its answer, and a duplicate only a count on the run it repeated.
Each now leaves a row: what "why not?" and a contact's timeline read. A schedule's tick
left only a log line; it now leaves one row with its audience and counts, which says of
every contact without a run of the tick that the audience left it out.

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
    op.create_table(
        'schedule_ticks',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('workspace_id', sa.Uuid(), nullable=False),
        sa.Column('workflow_id', sa.Uuid(), nullable=False),
        sa.Column('tick', UTCDateTime(timezone=True), nullable=False),
        sa.Column('fired_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('audience', sa.Text(), nullable=True),
        sa.Column('opened', sa.Integer(), nullable=False),
        sa.Column('existing', sa.Integer(), nullable=False),
        sa.Column('outside', sa.Integer(), nullable=False),
        sa.Column('audience_errors', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'],
                                name=op.f('fk_schedule_ticks_workspace_id_workspaces'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_ticks')),
    )
    op.create_index('ix_schedule_ticks_ws_workflow_tick', 'schedule_ticks',
                    ['workspace_id', 'workflow_id', 'tick'])


def downgrade() -> None:
    op.drop_index('ix_schedule_ticks_ws_workflow_tick', table_name='schedule_ticks')
    op.drop_table('schedule_ticks')
    op.drop_index('ix_trigger_events_ws_at', table_name='trigger_events')
    op.drop_index('ix_trigger_events_ws_contact_at', table_name='trigger_events')
    op.drop_table('trigger_events')
