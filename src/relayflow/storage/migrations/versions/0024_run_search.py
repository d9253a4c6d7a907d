"""run search: the words of each run's trigger payload, captured fields, idempotency key
and error, indexed

A run keeps what its INTEGRATION steps captured (`captured`), beside its payload, so one
index reads both. The searchable text of a run is its idempotency key, the first 1,000
characters of its error, then every scalar value (strings, numbers, booleans; keys are not
words) of its captured fields and of its trigger payload, at any depth, cut at 4,000
characters; its words are its runs of letters and digits.

PostgreSQL: a GIN index on `relayflow_run_words(...)`, a tsvector of those words, on the
runs themselves (partitioned with them: a month's partition takes its index along).

SQLite: `run_search`, an FTS5 table of one row per run (its id and its text; detail=none,
the smallest index: a search asks which runs hold every word, not where). The run keeps its
row's number in `search_doc`, so triggers update and delete it without a search: written on
insert, rewritten when the payload, key, error or captured fields change (an erase), gone
with the run.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08 01:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relayflow.storage.types import JSONType

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

_TEXT_LIMIT = 4000
_ERROR_LIMIT = 1000


def _sqlite_values(column: str) -> str:
    return (f"coalesce((SELECT group_concat(CASE type WHEN 'true' THEN 'true' "
            f"WHEN 'false' THEN 'false' ELSE value END, ' ') FROM json_tree({column}) "
            f"WHERE type NOT IN ('object', 'array', 'null')), '')")  # nosec B608


def _sqlite_text(row: str) -> str:
    return (f"substr(coalesce({row}.idempotency_key, '') || ' ' || "
            f"coalesce(substr({row}.error, 1, {_ERROR_LIMIT}), '') || ' ' || "
            f"{_sqlite_values(f'{row}.captured')} || ' ' || "
            f"{_sqlite_values(f'{row}.trigger_payload')}, 1, {_TEXT_LIMIT})")


_WATCHED = ("trigger_payload", "idempotency_key", "error", "captured")

_SQLITE = [
    "CREATE VIRTUAL TABLE run_search USING fts5(run_id UNINDEXED, doc, detail=none, "
    "columnsize=0, tokenize='unicode61 remove_diacritics 0')",
    # Numbered in id order, then indexed, in two statements; the triggers come after.
    """UPDATE workflow_runs SET search_doc = numbered.n FROM (
        SELECT id AS run_id, row_number() OVER (ORDER BY id) AS n FROM workflow_runs
    ) AS numbered WHERE workflow_runs.id = numbered.run_id""",
    f"""INSERT INTO run_search(rowid, run_id, doc)
        SELECT search_doc, id, {_sqlite_text('r')} FROM workflow_runs AS r""",  # nosec B608
    f"""CREATE TRIGGER run_search_insert AFTER INSERT ON workflow_runs BEGIN
        INSERT INTO run_search(run_id, doc) VALUES (NEW.id, {_sqlite_text('NEW')});
        UPDATE workflow_runs SET search_doc = last_insert_rowid() WHERE id = NEW.id;
    END""",  # nosec B608
    f"""CREATE TRIGGER run_search_update AFTER UPDATE OF {', '.join(_WATCHED)}
        ON workflow_runs WHEN NEW.search_doc IS NOT NULL AND ({' OR '.join(
            f'OLD.{c} IS NOT NEW.{c}' for c in _WATCHED)}) BEGIN
        UPDATE run_search SET doc = {_sqlite_text('NEW')} WHERE rowid = NEW.search_doc;
    END""",  # nosec B608
    """CREATE TRIGGER run_search_delete AFTER DELETE ON workflow_runs
        WHEN OLD.search_doc IS NOT NULL BEGIN
        DELETE FROM run_search WHERE rowid = OLD.search_doc;
    END""",
]


def _postgres_values(column: str) -> str:
    return (f"coalesce((SELECT string_agg(v #>> '{{}}', ' ') FROM jsonb_path_query("
            f"{column}, 'strict $.** ? (@.type() != \"object\" && @.type() != \"array\" "
            f"&& @.type() != \"null\")') AS v), '')")  # nosec B608


_POSTGRES = [
    # IMMUTABLE, as an index expression must be: every function it calls is (concat_ws is
    # not, hence ||). Its words are runs of letters and digits, as SQLite's tokenizer makes.
    f"""CREATE FUNCTION relayflow_run_words(payload jsonb, captured jsonb, idempotency_key
        text, error text) RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT to_tsvector('simple'::regconfig, regexp_replace(left(
            coalesce(idempotency_key, '') || ' ' || coalesce(left(error, {_ERROR_LIMIT}), '')
            || ' ' || {_postgres_values('captured')} || ' ' || {_postgres_values('payload')},
            {_TEXT_LIMIT}), '[^[:alnum:]]+', ' ', 'g'))
    $$""",  # nosec B608
    """CREATE INDEX ix_runs_search ON workflow_runs USING gin (
        relayflow_run_words(trigger_payload, captured, idempotency_key, error))""",
]


def upgrade() -> None:
    op.add_column('workflow_runs', sa.Column('captured', JSONType, nullable=True))
    op.add_column('workflow_runs', sa.Column('search_doc', sa.BigInteger(), nullable=True))
    for statement in _SQLITE if op.get_context().dialect.name == "sqlite" else _POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER run_search_{name}")
        op.execute("DROP TABLE run_search")
    else:
        op.execute("DROP INDEX ix_runs_search")
        op.execute("DROP FUNCTION relayflow_run_words(jsonb, jsonb, text, text)")
    op.execute("ALTER TABLE workflow_runs DROP COLUMN search_doc")
    op.execute("ALTER TABLE workflow_runs DROP COLUMN captured")
