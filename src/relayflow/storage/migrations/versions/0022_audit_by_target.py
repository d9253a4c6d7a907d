"""audit by target: a contact's (or any object's) audit events read by its id

A contact's page shows when it unsubscribed and who lifted a suppression, from the audit
trail; the trail was indexed by time alone, so finding one contact's events read the
workspace's whole trail.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 22:30:00
"""
from __future__ import annotations

from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_ws_target_at', 'audit_events',
                    ['workspace_id', 'target_type', 'target_id', 'at'])


def downgrade() -> None:
    op.drop_index('ix_audit_ws_target_at', table_name='audit_events')
