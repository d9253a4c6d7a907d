"""The rows a batch of walked runs writes at one fenced commit, in as few statements as the
databases allow: one INSERT per table, one UPDATE per table and set of columns.

The bulk of them (steps, attempts, runs) is made ready before the transaction begins
(`prepare`): each value converted for the database by its column's type, as SQLAlchemy would
do while executing, so that inside the transaction only the driver runs. On SQLite the
file's write lock is held from the first statement to COMMIT, and a webhook waiting for it
waits for the driver alone."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Dialect, Insert, Table, Update, bindparam, insert, update
from sqlalchemy.orm import Session

from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun
from relayflow.storage.notify import notify
from relayflow.storage.repositories import contact as contact_repo
from relayflow.storage.repositories import failure as failure_repo
from relayflow.storage.repositories import job as job_repo
from relayflow.storage.repositories import run as run_repo

_STEPS = cast(Table, RunStep.__table__)
_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)
_RUNS = cast(Table, WorkflowRun.__table__)
ATTEMPT_DEFAULTS = {"provider_message_id": None, "provider_response": None, "error": None,
                    "suppressed_by": None, "resend_of": None, "actor": None, "reason": None,
                    "sent_at": None, "retry_of": None, "html": None, "send_started_at": None,
                    "suppression_override": False}


@dataclass(slots=True)
class BatchWrites:
    """Every row change of a batch's commit, gathered from its runs."""

    new_steps: list[dict[str, Any]] = field(default_factory=list)
    step_updates: list[dict[str, Any]] = field(default_factory=list)
    new_attempts: list[dict[str, Any]] = field(default_factory=list)
    attempt_updates: list[dict[str, Any]] = field(default_factory=list)
    run_updates: list[dict[str, Any]] = field(default_factory=list)
    contact_sets: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    failure_groups: list[dict[str, Any]] = field(default_factory=list)
    children_runs: list[dict[str, Any]] = field(default_factory=list)
    children_steps: list[dict[str, Any]] = field(default_factory=list)
    children_jobs: list[dict[str, Any]] = field(default_factory=list)
    canceled: list[uuid.UUID] = field(default_factory=list)
    finished: list[uuid.UUID] = field(default_factory=list)  # their jobs are deleted
    parked: list[tuple[uuid.UUID, datetime]] = field(default_factory=list)  # due again then


@dataclass(slots=True)
class Prepared:
    """A batch's writes with its bulk rows ready for the driver: (SQL, parameters) pairs
    in the order they run (rows first, then their updates)."""

    writes: BatchWrites
    statements: list[tuple[str, list[Any]]]


def prepare(dialect: Dialect, writes: BatchWrites) -> Prepared:
    # Rows first, then their updates: a message's attempt and its "sending now" mark can
    # be written by the same transaction (services/walk.py), and an UPDATE of a row not yet
    # inserted would change nothing.
    statements = []
    if writes.new_steps:
        statements.append(_bound(dialect, _insert_into(_STEPS), writes.new_steps))
    if writes.new_attempts:
        statements.append(_bound(dialect, _insert_into(_ATTEMPTS),
                                 [{**ATTEMPT_DEFAULTS, **row} for row in writes.new_attempts]))
    for rows, table in ((writes.step_updates, _STEPS), (writes.attempt_updates, _ATTEMPTS),
                        (writes.run_updates, _RUNS)):
        for group in _by_keys(rows):
            statements.append(_bound(dialect, _update_by_id(table), _keyed(table, group)))
    return Prepared(writes, statements)


def apply(session: Session, prepared: Prepared, now: datetime) -> None:
    connection = session.connection()
    for sql, parameters in prepared.statements:
        connection.exec_driver_sql(sql, parameters)
    writes = prepared.writes
    if writes.children_runs:
        session.execute(insert(_RUNS), writes.children_runs)
        session.execute(insert(_STEPS), writes.children_steps)
        job_repo.add_many(session, writes.children_jobs)
        notify(session)
    for run_id in writes.canceled:
        run_repo.cancel_open_steps(session, run_id, now)
    if writes.contact_sets:
        contacts = contact_repo.get_many(session, writes.contact_sets, lock=True)
        for contact_id, values in writes.contact_sets.items():
            contact = contacts.get(contact_id)
            if contact is not None:
                contact.attributes = {**(contact.attributes or {}), **values}
                contact.updated_at = now
    failure_repo.describe(session, writes.failure_groups)
    job_repo.remove(session, writes.finished)
    job_repo.park(session, writes.parked)


def _bound(dialect: Dialect, statement: Insert | Update,
           rows: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The statement's SQL for rows with these keys, and each row's values as the driver
    takes them (a tuple in the SQL's order, or a mapping by name)."""
    sql, names, convert = _compiled(dialect, statement, tuple(rows[0]))
    if dialect.positional:
        return sql, [tuple(c(row[n]) if c else row[n] for n, c in zip(names, convert,
                                                                      strict=True))
                     for row in rows]
    return sql, [{n: c(row[n]) if c else row[n] for n, c in zip(names, convert, strict=True)}
                 for row in rows]


@functools.cache
def _compiled(dialect: Dialect, statement: Insert | Update, keys: tuple[str, ...]) -> tuple[
        str, tuple[str, ...], tuple[Any, ...]]:
    """SQL, bind names in order, and each bind's converter (None: taken as it is)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.binds)
    convert = tuple(compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)
                    for n in names)
    return compiled.string, names, convert


def _by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """An UPDATE of many rows by id sets the same columns in every row: the rows grouped by
    the columns they set."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


@functools.cache
def _insert_into(table: Table) -> Insert:
    """One INSERT statement per table: `_compiled` is cached by statement, and two
    `insert(table)` are two statements to it."""
    return insert(table)


@functools.cache
def _update_by_id(table: Table) -> Update:
    """UPDATE table SET <the columns each row names> WHERE id = :row_id, run once per row
    (executemany); a step also by its run's id (:row_run_id), which on PostgreSQL names
    its partition (storage/partitions.py), where the step table has no index on id alone.
    Core, not the ORM's bulk UPDATE by primary key, which took twice the CPU for the same
    SQL."""
    where = table.c.id == bindparam("row_id")
    if table is _STEPS:
        where = (table.c.run_id == bindparam("row_run_id")) & where
    return update(table).where(where)


def _keyed(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the statement's parameters: the ids under the names WHERE binds (every
    other key is a column to SET)."""
    names = {"id": "row_id", **({"run_id": "row_run_id"} if table is _STEPS else {})}
    return [{names.get(key, key): value for key, value in row.items()} for row in rows]
