"""job traceparent: the trace a run's walks join, when tracing is on

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08 03:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('traceparent', sa.String(length=55), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN traceparent")
