"""failure counts: an hourly rollup of failures by cause, kept by the rollups' triggers

/failures counted a range's failed runs and attempts by reading them: at 10,000,000 runs,
a month is about 165,000 of each. run_failure_counts and delivery_failure_counts hold how
many runs (attempts) of each cause were created in each hour, as run_counts holds them by
status; /failures reads hours, and only the window's partial hours from the rows.

The triggers of migrations 0011 and 0012 now also write each row's fingerprint as it was
and as it is (old_fingerprint, new_fingerprint) to the changes tables, and fire when the
fingerprint changes as well as the status; the fold adds them up
(storage/repositories/rollup.py). The failures already stored are counted once, here.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 21:00:00
"""
from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

_HOUR = {"sqlite": "CAST(strftime('%s', {row}.created_at) AS INTEGER) / 3600 * 3600",
         "postgresql": "(floor(extract(epoch FROM {row}.created_at) / 3600) * 3600)::bigint"}
_NIL = {"sqlite": "'00000000000000000000000000000000'",
        "postgresql": "'00000000-0000-0000-0000-000000000000'::uuid"}


class _Source(NamedTuple):
    table: str
    changes: str
    failures: str
    prefix: str  # of the triggers' names
    keys: tuple[str, ...]  # besides the workspace and the hour
    nullable_workflow: bool  # an attempt of a test send has none


_SOURCES = (
    _Source("workflow_runs", "run_count_changes", "run_failure_counts", "run_counts",
            ("workflow_id",), False),
    _Source("delivery_attempts", "delivery_count_changes", "delivery_failure_counts",
            "delivery_counts", ("workflow_id", "channel"), True),
)


def _change(source: _Source, dialect: str, row: str, old: str, new: str,
            fingerprints: bool) -> str:
    """The INSERT of one change: `row` (OLD or NEW) gives the keys; `old` and `new` are
    its status left and entered (or NULL), and the fingerprint with them."""
    columns = ["workspace_id", *source.keys, "hour", "old_status", "new_status"]
    keys = [f"{row}.{key}" for key in source.keys]
    if source.nullable_workflow:
        keys[0] = f"COALESCE({row}.workflow_id, {_NIL[dialect]})"
    values = [f"{row}.workspace_id", *keys, _HOUR[dialect].format(row=row),
              f"{old}.status" if old != "NULL" else "NULL",
              f"{new}.status" if new != "NULL" else "NULL"]
    if fingerprints:
        columns += ["old_fingerprint", "new_fingerprint"]
        values += [f"{old}.fingerprint" if old != "NULL" else "NULL",
                   f"{new}.fingerprint" if new != "NULL" else "NULL"]
    return (f"INSERT INTO {source.changes} ({', '.join(columns)}) "
            f"VALUES ({', '.join(values)});")  # nosec B608: this module's names


def _triggers(source: _Source, dialect: str, fingerprints: bool) -> list[str]:
    """The triggers of `source` as 0011 and 0012 made them, and, with `fingerprints`,
    writing the fingerprints too and firing when one changes."""
    watched = ("status", "fingerprint") if fingerprints else ("status",)
    placed = ("workspace_id", *source.keys, "created_at")
    name = source.prefix

    def change(row: str, old: str, new: str) -> str:
        return _change(source, dialect, row, old, new, fingerprints)

    if dialect == "sqlite":
        moved = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in placed)
        changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in watched)
        return [
            f"""CREATE TRIGGER {name}_insert AFTER INSERT ON {source.table} BEGIN
                {change("NEW", "NULL", "NEW")} END""",
            f"""CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(watched)}
                ON {source.table} WHEN ({changed}) AND NOT ({moved}) BEGIN
                {change("NEW", "OLD", "NEW")} END""",
            f"""CREATE TRIGGER {name}_move AFTER UPDATE OF {', '.join(placed)}
                ON {source.table} WHEN {moved} BEGIN
                {change("OLD", "OLD", "NULL")}
                {change("NEW", "NULL", "NEW")} END""",
            f"""CREATE TRIGGER {name}_delete AFTER DELETE ON {source.table} BEGIN
                {change("OLD", "OLD", "NULL")} END""",
        ]
    moved = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in placed)
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in watched)
    return [
        f"""CREATE OR REPLACE FUNCTION {name}_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {change("NEW", "NULL", "NEW")}
            ELSIF TG_OP = 'DELETE' THEN
                {change("OLD", "OLD", "NULL")}
            ELSIF {moved} THEN
                {change("OLD", "OLD", "NULL")}
                {change("NEW", "NULL", "NEW")}
            ELSE
                {change("NEW", "OLD", "NEW")}
            END IF;
            RETURN NULL;
        END $$""",
        f"DROP TRIGGER IF EXISTS {name}_update ON {source.table}",
        f"""CREATE TRIGGER {name}_update
            AFTER UPDATE OF {', '.join((*watched, *placed))} ON {source.table}
            FOR EACH ROW WHEN ({changed} OR {moved})
            EXECUTE FUNCTION {name}_change()""",
    ]


def _replace_triggers(fingerprints: bool) -> None:
    dialect = op.get_bind().dialect.name
    for source in _SOURCES:
        if dialect == "sqlite":
            for kind in ("insert", "update", "move", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {source.prefix}_{kind}")
        for statement in _triggers(source, dialect, fingerprints):
            op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for source in _SOURCES:
        for column in ("old_fingerprint", "new_fingerprint"):
            op.add_column(source.changes, sa.Column(column, sa.String(16), nullable=True))
        op.create_table(
            source.failures,
            sa.Column('workspace_id', sa.Uuid(), nullable=False),
            sa.Column('hour', sa.BigInteger(), nullable=False),
            sa.Column('fingerprint', sa.String(length=16), nullable=False),
            sa.Column('failures', sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint('workspace_id', 'hour', 'fingerprint',
                                    name=op.f(f'pk_{source.failures}')),
            sqlite_with_rowid=False,
        )
    _replace_triggers(fingerprints=True)
    # The failures already stored, counted once (through the partial index of the failed
    # ones); from here on the triggers keep the count. Changes not folded yet carry no
    # fingerprint, so they add nothing to what this counts.
    for source in _SOURCES:
        hour = _HOUR[dialect].format(row=source.table)
        op.execute(f"""INSERT INTO {source.failures} (workspace_id, hour, fingerprint, failures)
                       SELECT workspace_id, {hour}, fingerprint, count(*) FROM {source.table}
                       WHERE fingerprint IS NOT NULL GROUP BY 1, 2, 3""")  # nosec B608


def downgrade() -> None:
    _replace_triggers(fingerprints=False)
    for source in _SOURCES:
        op.drop_table(source.failures)
        for column in ("new_fingerprint", "old_fingerprint"):
            # Both databases drop a column in place (SQLite since 3.35); a batch copy
            # would rename the table under the triggers that write to it.
            op.execute(f"ALTER TABLE {source.changes} DROP COLUMN {column}")
