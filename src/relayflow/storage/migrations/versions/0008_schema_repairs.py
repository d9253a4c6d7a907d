"""schema repairs: what an early 0003 lacked, wide duration and counter columns

Two repairs, both safe to run on any database at 0007:

1. `delivery_attempts.suppression_override` is added where it is missing. Migration 0003
   was edited after release to add it, so a database created with the released 0003
   reported itself up to date without the column (and every worker iteration failed).
   Existing attempts get false: none of them was sent under an override.

2. Columns that grow without a product bound become BIGINT. INTEGER stops at 2^31 - 1 on
   PostgreSQL: 24.8 days in milliseconds, while a WAIT may last 366 days (or, with
   `until`, to any date). Widened, with why:
     run_steps.duration_ms           a step's span: a year-long WAIT is 3.2e10 ms
     run_steps.seq                   steps per run: a workflow looping through a WAIT
                                     never stops adding them
     delivery_attempts.step_seq      mirrors run_steps.seq
     jobs.lease_token, jobs.claims   one more per claim of a run, for as long as it lives
     workflow_runs.duplicates_ignored  one more per duplicate trigger a client sends
     workflow_versions.number        one more per changed definition saved
   Left INTEGER, because the product bounds them far below 2^31: attempt_number (at most
   `delivery_max_attempts`; a resend starts again at 1), frequency_counts.count (the cap is
   at most 10,000 a day; only operator resends pass it), rate_counters.count (the requests
   of one minute, or of one signed request's 5-minute window).

On PostgreSQL each table is altered in one statement, so it is rewritten once, under its
ACCESS EXCLUSIVE lock: the upgrade takes as long as copying the tables (1,000,000 steps
and 200,000 runs: 2.9 s on a loaded 2-core machine).
On SQLite nothing is rewritten: INTEGER and BIGINT are the same 64-bit storage there, and
recreating workflow_runs in batch mode with foreign keys on would cascade-delete its steps
and jobs (storage/migrate.py's comparison treats the two names as one on SQLite).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 02:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

WIDENED = {
    "run_steps": ("seq", "duration_ms"),
    "delivery_attempts": ("step_seq",),
    "jobs": ("lease_token", "claims"),
    "workflow_runs": ("duplicates_ignored",),
    "workflow_versions": ("number",),
}


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("delivery_attempts")}
    if "suppression_override" not in columns:
        with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
            batch_op.add_column(sa.Column("suppression_override", sa.Boolean(), nullable=False,
                                          server_default=sa.false()))
    _retype("BIGINT")


def downgrade() -> None:
    # suppression_override stays: 0007 as it is shipped (the edited 0003) has it.
    # Narrowing fails, rather than truncates, if a value no longer fits.
    _retype("INTEGER")


def _retype(sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, names in WIDENED.items():
        clauses = ", ".join(f"ALTER COLUMN {name} TYPE {sql_type}" for name in names)
        op.execute(f"ALTER TABLE {table} {clauses}")
