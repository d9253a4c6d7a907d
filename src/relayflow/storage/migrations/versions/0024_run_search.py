"""run search: the words of each run's trigger payload, captured fields, idempotency key
and error, indexed

A run keeps what its INTEGRATION steps captured (`captured`), beside its payload, so one
index reads both. The searchable text of a run is its idempotency key, the first 1,000
characters of its error, then every scalar value (strings, numbers, booleans; keys are not
words) of its captured fields and of its trigger payload, at any depth, cut at 4,000
characters; its words are its runs of letters and digits.

PostgreSQL: `run_search`, the words of each run (a tsvector, `relayflow_run_words(...)`)
under a GIN index, partitioned by run id like the runs' steps, so that a month leaves with
its runs. Kept by triggers on the runs that fire only when the payload, key, error or
captured fields change: a run changes status several times as it walks, and an index on
the runs themselves would compute its words again at each change (13% of the worker's
throughput, measured).

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

from relayflow.storage import partitions
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
    # Trimmed: most runs have no key, error or captured fields, and the spaces between
    # those empty parts would be stored with every run's text.
    return (f"substr(trim(coalesce({row}.idempotency_key, '') || ' ' || "
            f"coalesce(substr({row}.error, 1, {_ERROR_LIMIT}), '') || ' ' || "
            f"{_sqlite_values(f'{row}.captured')} || ' ' || "
            f"{_sqlite_values(f'{row}.trigger_payload')}), 1, {_TEXT_LIMIT})")


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
    # IMMUTABLE: the same run always has the same words (concat_ws is only STABLE, hence
    # ||). Its words are runs of letters and digits, as SQLite's tokenizer makes them.
    f"""CREATE FUNCTION relayflow_run_words(payload jsonb, captured jsonb, idempotency_key
        text, error text) RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT to_tsvector('simple'::regconfig, regexp_replace(left(
            coalesce(idempotency_key, '') || ' ' || coalesce(left(error, {_ERROR_LIMIT}), '')
            || ' ' || {_postgres_values('captured')} || ' ' || {_postgres_values('payload')},
            {_TEXT_LIMIT}), '[^[:alnum:]]+', ' ', 'g'))
    $$""",  # nosec B608
    """CREATE FUNCTION relayflow_run_search_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            DELETE FROM run_search WHERE run_id = OLD.id;
        ELSE
            INSERT INTO run_search (run_id, words) VALUES (NEW.id, relayflow_run_words(
                NEW.trigger_payload, NEW.captured, NEW.idempotency_key, NEW.error))
            ON CONFLICT (run_id) DO UPDATE SET words = EXCLUDED.words;
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER run_search_insert AFTER INSERT ON workflow_runs FOR EACH ROW "
    "EXECUTE FUNCTION relayflow_run_search_write()",
    f"CREATE TRIGGER run_search_update AFTER UPDATE OF {', '.join(_WATCHED)} ON workflow_runs "
    f"FOR EACH ROW WHEN ({' OR '.join(f'OLD.{c} IS DISTINCT FROM NEW.{c}' for c in _WATCHED)}) "
    "EXECUTE FUNCTION relayflow_run_search_write()",
    "CREATE TRIGGER run_search_delete AFTER DELETE ON workflow_runs FOR EACH ROW "
    "EXECUTE FUNCTION relayflow_run_search_write()",
]


def _postgres_table() -> None:
    """run_search, partitioned by run id in the months the runs have (or not, where the
    runs are not), filled from the runs stored, then indexed."""
    bind = op.get_bind()
    split = partitions.is_partitioned(bind)
    bind.exec_driver_sql(
        "CREATE TABLE run_search (run_id uuid NOT NULL, words tsvector NOT NULL, "
        "CONSTRAINT pk_run_search PRIMARY KEY (run_id))"
        + (" PARTITION BY RANGE (run_id)" if split else ""))
    if split:
        bind.exec_driver_sql(partitions.create_sql("run_search", None))
        for month in partitions.existing(bind, "workflow_runs"):
            bind.exec_driver_sql(partitions.create_sql("run_search", month))
    bind.exec_driver_sql(
        "INSERT INTO run_search (run_id, words) SELECT id, relayflow_run_words("
        "trigger_payload, captured, idempotency_key, error) FROM workflow_runs")
    bind.exec_driver_sql("CREATE INDEX ix_run_search_words ON run_search USING gin (words)")


def upgrade() -> None:
    op.add_column('workflow_runs', sa.Column('captured', JSONType, nullable=True))
    op.add_column('workflow_runs', sa.Column('search_doc', sa.BigInteger(), nullable=True))
    if op.get_context().dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)
        return
    op.execute(_POSTGRES[0])
    _postgres_table()
    for statement in _POSTGRES[1:]:
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER run_search_{name}")
        op.execute("DROP TABLE run_search")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER run_search_{name} ON workflow_runs")
        op.execute("DROP FUNCTION relayflow_run_search_write()")
        op.execute("DROP TABLE run_search")
        op.execute("DROP FUNCTION relayflow_run_words(jsonb, jsonb, text, text)")
    op.execute("ALTER TABLE workflow_runs DROP COLUMN search_doc")
    op.execute("ALTER TABLE workflow_runs DROP COLUMN captured")
