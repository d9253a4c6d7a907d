"""The rows a batch of walked runs writes at one fenced commit, in as few statements as the
databases allow: one INSERT per table, one UPDATE per table and set of columns."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, insert, update
from sqlalchemy.orm import Session

from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun
from relayflow.storage.notify import notify
from relayflow.storage.repositories import contact as contact_repo
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
    children_runs: list[dict[str, Any]] = field(default_factory=list)
    children_steps: list[dict[str, Any]] = field(default_factory=list)
    children_jobs: list[dict[str, Any]] = field(default_factory=list)
    canceled: list[uuid.UUID] = field(default_factory=list)
    finished: list[uuid.UUID] = field(default_factory=list)  # their jobs are deleted
    parked: list[tuple[uuid.UUID, datetime]] = field(default_factory=list)  # due again then


def apply(session: Session, writes: BatchWrites, now: datetime) -> None:
    # Rows first, then their updates: a message's attempt and its "sending now" mark can
    # be written by the same transaction (services/walk.py), and an UPDATE of a row not yet
    # inserted would change nothing.
    if writes.new_steps:
        session.execute(insert(_STEPS), writes.new_steps)
    if writes.new_attempts:
        session.execute(insert(_ATTEMPTS),
                        [{**ATTEMPT_DEFAULTS, **row} for row in writes.new_attempts])
    for rows, table in ((writes.step_updates, _STEPS), (writes.attempt_updates, _ATTEMPTS)):
        for group in _by_keys(rows):
            session.execute(_update_by_id(table), _keyed(group))
    if writes.children_runs:
        session.execute(insert(_RUNS), writes.children_runs)
        session.execute(insert(_STEPS), writes.children_steps)
        job_repo.add_many(session, writes.children_jobs)
        notify(session)
    for group in _by_keys(writes.run_updates):
        session.execute(_update_by_id(_RUNS), _keyed(group))
    for run_id in writes.canceled:
        run_repo.cancel_open_steps(session, run_id, now)
    if writes.contact_sets:
        contacts = contact_repo.get_many(session, writes.contact_sets, lock=True)
        for contact_id, values in writes.contact_sets.items():
            contact = contacts.get(contact_id)
            if contact is not None:
                contact.attributes = {**(contact.attributes or {}), **values}
                contact.updated_at = now
    job_repo.remove(session, writes.finished)
    job_repo.park(session, writes.parked)


def _by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """An UPDATE of many rows by id sets the same columns in every row: the rows grouped by
    the columns they set."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


@functools.cache
def _update_by_id(table: Table) -> Update:
    """UPDATE table SET <the columns each row names> WHERE id = :row_id, run once per row
    (executemany). Core, not the ORM's bulk UPDATE by primary key, which took twice the
    CPU for the same SQL."""
    return update(table).where(table.c.id == bindparam("row_id"))


def _keyed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the statement's parameters: the id under the name WHERE binds (every
    other key is a column to SET)."""
    return [{"row_id" if key == "id" else key: value for key, value in row.items()}
            for row in rows]
