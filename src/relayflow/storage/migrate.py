"""Run Alembic migrations from code (no alembic.ini needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Integer, MetaData
from sqlalchemy.types import TypeEngine

from relayflow.storage import partitions
from relayflow.storage.db import make_engine, normalize_url
from relayflow.storage.models import Base

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def current(url: str) -> str | None:
    """The revision the database is at; None when it holds no schema yet."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    _migrate(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str) -> None:
    _migrate(url, lambda config: command.downgrade(config, revision))


def _migrate(url: str, action: Callable[[Config], None]) -> None:
    """Run `action` on one connection, in one transaction.

    On SQLite, batch mode alters a column by copying the table and dropping the old one;
    with foreign keys on, dropping `workflows` would cascade-delete every version and run.
    So foreign keys are off while the migrations run (SQLite ignores the pragma inside a
    transaction: it is set before), and checked before the commit instead."""
    config = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                _pragma(conn, "PRAGMA foreign_keys=OFF")
            config.attributes["connection"] = conn
            with conn.begin():
                action(config)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left rows without parents: {broken}")
            if sqlite:
                _pragma(conn, "PRAGMA foreign_keys=ON")
    finally:
        engine.dispose()


def _pragma(conn: Connection, statement: str) -> None:
    # On the driver's connection, so SQLAlchemy does not open (BEGIN IMMEDIATE) first.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def drift(url: str, metadata: MetaData = Base.metadata) -> list[str]:
    """How the database at `url` differs from `metadata` (the models): Alembic's
    autogenerate comparison, strict on column types and server defaults, one readable line
    per difference. Empty when the migrations built exactly what the models declare.

    The custom types of storage/types.py need no special handling: Alembic compares a
    TypeDecorator through its implementation (UTCDateTime as timestamptz) and a variant
    through the dialect's type (JSONType as JSONB on PostgreSQL).

    PostgreSQL's partitions (storage/partitions.py) are left out: the models declare the
    partitioned tables, and each partition, with the foreign keys PostgreSQL makes to it,
    is a copy of its table's definition. So is the search index of runs (migration 0024,
    `run_search`), which no model declares: SQLite's virtual table and its shadow tables,
    PostgreSQL's table of tsvectors (a model would gain nothing: SQL alone reads it)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            split = partitions.partition_names(conn)

            def declared(item: Any, name: str | None, kind: str, reflected: bool,
                         _: Any) -> bool:
                if kind == "table":
                    return name not in split and not (name or "").startswith("run_search")
                if kind == "foreign_key_constraint" and reflected:
                    return str(item.referred_table.name) not in split
                return True

            context = MigrationContext.configure(
                conn, opts={"compare_type": _compare_type, "compare_server_default": True,
                            "include_object": declared})
            return [_describe(item) for item in compare_metadata(context, metadata)]
    finally:
        engine.dispose()


def _compare_type(context: MigrationContext, inspected_column: Any, metadata_column: Any,
                  inspected_type: TypeEngine[Any], metadata_type: TypeEngine[Any]) -> bool | None:
    """False (the same) for INTEGER against BIGINT on SQLite, where both names mean one
    64-bit storage class and migration 0008 leaves the declared name alone; None (Alembic's
    own comparison) for everything else."""
    if context.dialect.name == "sqlite" and all(
            isinstance(t, Integer) for t in (inspected_type, metadata_type)):
        return False
    return None


def _describe(item: Any) -> str:
    if isinstance(item, list):  # one column's modifications come grouped
        return "; ".join(_describe(part) for part in item)
    kind = str(item[0])
    if kind.startswith("modify_"):
        _, _, table, column, _, reflected, declared = item
        return f"{kind} {table}.{column}: database {_shown(reflected)}, models {_shown(declared)}"
    if kind in ("add_column", "remove_column"):
        return f"{kind} {item[2]}.{item[3].name}"
    target = item[-1]
    table = getattr(getattr(target, "table", None), "name", None)
    name = getattr(target, "name", None)
    return f"{kind} {table}.{name}" if table and table != name else f"{kind} {name}"


def _shown(value: Any) -> str:
    # A server default arrives as a DefaultClause around a SQL expression or text.
    return str(getattr(value, "arg", value))
