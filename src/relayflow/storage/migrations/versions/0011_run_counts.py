"""run counts: an hourly rollup of runs by workflow and status, kept by triggers

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 23:00:00

Chip counts and the volume chart read run_counts / run_totals instead of counting runs.
The database keeps them exact: a trigger on workflow_runs appends each insert, status
change and delete to run_count_changes, in the transaction that made it, whatever code
wrote the run; the worker folds the changes into the two tables
(storage/repositories/run_counts.py).

A later migration that rebuilds workflow_runs on SQLite (batch mode copies the table and
drops the old one) drops these triggers with it and must create them again;
tests/storage/test_run_counts.py checks they exist at head.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_HOUR_SQLITE = "CAST(strftime('%s', {row}.created_at) AS INTEGER) / 3600 * 3600"
_HOUR_POSTGRES = "(floor(extract(epoch FROM {row}.created_at) / 3600) * 3600)::bigint"
_KEYS = "workspace_id, workflow_id, hour, old_status, new_status"


def _sqlite_triggers() -> list[str]:
    old, new = _HOUR_SQLITE.format(row="OLD"), _HOUR_SQLITE.format(row="NEW")
    moved = ("OLD.workspace_id IS NOT NEW.workspace_id OR OLD.workflow_id IS NOT "
             "NEW.workflow_id OR OLD.created_at IS NOT NEW.created_at")
    return [
        f"""CREATE TRIGGER run_counts_insert AFTER INSERT ON workflow_runs BEGIN
            INSERT INTO run_count_changes ({_KEYS})
            VALUES (NEW.workspace_id, NEW.workflow_id, {new}, NULL, NEW.status); END""",  # nosec B608
        f"""CREATE TRIGGER run_counts_update AFTER UPDATE OF status ON workflow_runs
            WHEN OLD.status IS NOT NEW.status AND NOT ({moved}) BEGIN
            INSERT INTO run_count_changes ({_KEYS})
            VALUES (NEW.workspace_id, NEW.workflow_id, {new}, OLD.status, NEW.status); END""",  # nosec B608
        # A run never moves to another workflow, workspace or hour; were one to, it is
        # counted out of its old place and into the new one.
        f"""CREATE TRIGGER run_counts_move AFTER UPDATE OF workspace_id, workflow_id,
            created_at ON workflow_runs WHEN {moved} BEGIN
            INSERT INTO run_count_changes ({_KEYS})
            VALUES (OLD.workspace_id, OLD.workflow_id, {old}, OLD.status, NULL);
            INSERT INTO run_count_changes ({_KEYS})
            VALUES (NEW.workspace_id, NEW.workflow_id, {new}, NULL, NEW.status); END""",  # nosec B608
        f"""CREATE TRIGGER run_counts_delete AFTER DELETE ON workflow_runs BEGIN
            INSERT INTO run_count_changes ({_KEYS})
            VALUES (OLD.workspace_id, OLD.workflow_id, {old}, OLD.status, NULL); END""",  # nosec B608
    ]


def _postgres_triggers() -> list[str]:
    old, new = _HOUR_POSTGRES.format(row="OLD"), _HOUR_POSTGRES.format(row="NEW")
    return [
        f"""CREATE FUNCTION run_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' AND (TG_OP = 'DELETE'
                    OR OLD.workspace_id <> NEW.workspace_id
                    OR OLD.workflow_id <> NEW.workflow_id
                    OR OLD.created_at <> NEW.created_at) THEN
                INSERT INTO run_count_changes ({_KEYS})
                VALUES (OLD.workspace_id, OLD.workflow_id, {old}, OLD.status, NULL);
                IF TG_OP = 'DELETE' THEN
                    RETURN NULL;
                END IF;
                INSERT INTO run_count_changes ({_KEYS})
                VALUES (NEW.workspace_id, NEW.workflow_id, {new}, NULL, NEW.status);
            ELSE
                INSERT INTO run_count_changes ({_KEYS})
                VALUES (NEW.workspace_id, NEW.workflow_id, {new},
                        CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status);
            END IF;
            RETURN NULL;
        END $$""",  # nosec B608
        """CREATE TRIGGER run_counts_insert AFTER INSERT ON workflow_runs
           FOR EACH ROW EXECUTE FUNCTION run_counts_change()""",
        """CREATE TRIGGER run_counts_update
           AFTER UPDATE OF status, workspace_id, workflow_id, created_at ON workflow_runs
           FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                              OR OLD.workspace_id <> NEW.workspace_id
                              OR OLD.workflow_id <> NEW.workflow_id
                              OR OLD.created_at <> NEW.created_at)
           EXECUTE FUNCTION run_counts_change()""",
        """CREATE TRIGGER run_counts_delete AFTER DELETE ON workflow_runs
           FOR EACH ROW EXECUTE FUNCTION run_counts_change()""",
    ]


def upgrade() -> None:
    op.create_table(
        'run_counts',
        sa.Column('workspace_id', sa.Uuid(), nullable=False),
        sa.Column('workflow_id', sa.Uuid(), nullable=False),
        sa.Column('hour', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('runs', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('workspace_id', 'workflow_id', 'hour', 'status',
                                name=op.f('pk_run_counts')),
    )
    op.create_table(
        'run_totals',
        sa.Column('workspace_id', sa.Uuid(), nullable=False),
        sa.Column('hour', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('runs', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('workspace_id', 'hour', 'status', name=op.f('pk_run_totals')),
    )
    op.create_table(
        'run_count_changes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('workspace_id', sa.Uuid(), nullable=False),
        sa.Column('workflow_id', sa.Uuid(), nullable=False),
        sa.Column('hour', sa.BigInteger(), nullable=False),
        sa.Column('old_status', sa.String(length=16), nullable=True),
        sa.Column('new_status', sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_run_count_changes')),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _sqlite_triggers() if sqlite else _postgres_triggers():
        op.execute(statement)
    # The runs already stored, counted once; from here on the triggers keep the count.
    hour = (_HOUR_SQLITE if sqlite else _HOUR_POSTGRES).format(row="workflow_runs")
    op.execute(f"""INSERT INTO run_counts (workspace_id, workflow_id, hour, status, runs)
                   SELECT workspace_id, workflow_id, {hour}, status, count(*)
                   FROM workflow_runs GROUP BY 1, 2, 3, 4""")  # nosec B608
    op.execute("""INSERT INTO run_totals (workspace_id, hour, status, runs)
                  SELECT workspace_id, hour, status, sum(runs)
                  FROM run_counts GROUP BY 1, 2, 3""")


def downgrade() -> None:
    for trigger in ("run_counts_insert", "run_counts_update", "run_counts_move",
                    "run_counts_delete"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON workflow_runs")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS run_counts_change()")
    op.drop_table('run_count_changes')
    op.drop_table('run_totals')
    op.drop_table('run_counts')
