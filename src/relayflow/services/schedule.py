"""The schedule trigger: when a schedule fires, and one run per audience contact per tick.

When is pure arithmetic over the trigger (`due_tick`, `next_fire_times`). `tick` turns a
due tick into runs. Each run's idempotency key is derived from (tick, contact), so the
unique (workflow_id, idempotency_key) constraint, not this module's bookkeeping, is what
keeps a restarted, duplicated or concurrent scheduler from doubling a tick.

Cron fields are matched against the wall clock of the trigger's timezone (croniter with
aware datetimes). Across DST changes:

- a wall-clock time skipped by a spring-forward change fires once, at the first instant
  after the gap (croniter's own behaviour: a 02:30 job runs at 03:00 that day);
- a wall-clock time that happens twice on a fall-back day fires once, at its first
  occurrence, unless the hour field starts with `*` (every hour, every n hours): such a
  schedule follows real time and fires in both passes of the repeated hour. croniter on
  its own fires both passes for every expression, so a daily 02:30 job would run twice;
  the second pass is dropped here, as Vixie cron does for fixed-time jobs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter
from sqlalchemy.orm import Session

from relayflow.engine import templates
from relayflow.services import run as run_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, ScheduleTick, Workflow
from relayflow.storage.repositories import contact as contact_repo
from relayflow.storage.repositories import schedule as schedule_repo

log = logging.getLogger(__name__)

BATCH = 500  # contacts per transaction, so a large audience never holds a long one
_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# --- when ----------------------------------------------------------------------------


def zone_of(trigger: Mapping[str, Any]) -> ZoneInfo:
    """The timezone the trigger's cron (or naive `at`) is read in; UTC by default."""
    return ZoneInfo(str(trigger.get("timezone") or "UTC"))


def at_of(trigger: Mapping[str, Any]) -> datetime:
    """The instant of a one-off `at` trigger, in UTC; a naive `at` is in the trigger's zone."""
    value = trigger["at"]
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone_of(trigger))
    return parsed.astimezone(UTC)


def due_tick(
    trigger: Mapping[str, Any], *, now: datetime, not_before: datetime
) -> datetime | None:
    """The tick to fire at `now`: the most recent one at or before `now`, unless it is
    earlier than `not_before` (when the workflow was activated). Older ticks missed while
    no scheduler ran are never returned: after downtime only the latest one fires."""
    if trigger.get("at") is not None:
        at = at_of(trigger)
        due = at if at <= now else None
    else:
        due = _latest_tick(str(trigger["cron"]), zone_of(trigger), now)
    return due if due is not None and due >= not_before else None


def next_fire_times(
    trigger: Mapping[str, Any], *, now: datetime, count: int = 5
) -> list[datetime]:
    """The next `count` fire times strictly after `now`, as UTC datetimes (show them in
    `zone_of(trigger)`). An `at` trigger has one, or none once it has passed."""
    if trigger.get("at") is not None:
        at = at_of(trigger)
        return [at] if at > now and count > 0 else []
    return list(islice(_ticks_after(str(trigger["cron"]), zone_of(trigger), now), count))


def idempotency_key(tick: datetime, contact_id: uuid.UUID) -> str:
    """`schedule:2026-03-09T13:00:00Z:<contact id>`: one run per (workflow, contact, tick)."""
    stamp = tick.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"schedule:{stamp}:{contact_id}"


def _follows_real_time(cron: str) -> bool:
    fields = _ALIASES.get(cron.strip().lower(), cron).split()
    return len(fields) < 2 or fields[1].startswith("*")


def _second_pass(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether `instant` is the second occurrence of a wall-clock time that a fall-back
    change repeats (fromutc sets fold=1 on exactly those)."""
    local = instant.astimezone(zone)
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()


def _ticks_after(cron: str, zone: ZoneInfo, start: datetime) -> Iterator[datetime]:
    both_passes = _follows_real_time(cron)
    ticks = croniter(cron, start.astimezone(zone))
    while True:
        try:
            instant = ticks.get_next(datetime).astimezone(UTC)
        except CroniterBadDateError:  # matches no date any more (e.g. "0 0 30 2 *")
            return
        if both_passes or not _second_pass(instant, zone):
            yield instant


def _latest_tick(cron: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    both_passes = _follows_real_time(cron)
    # get_prev is strictly before its start; a tick falling exactly on `now` is due.
    ticks = croniter(cron, (now + timedelta(microseconds=1)).astimezone(zone))
    try:
        latest = ticks.get_prev(datetime).astimezone(UTC)
        while not both_passes and _second_pass(latest, zone):
            latest = ticks.get_prev(datetime).astimezone(UTC)
    except CroniterBadDateError:
        return None
    # Settle on get_next's answer so that due_tick never disagrees with next_fire_times,
    # should croniter's backward and forward walks ever differ around a DST change.
    for instant in _ticks_after(cron, zone, latest):
        if instant > now:
            break
        latest = instant
    return latest


# --- the scheduler --------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class Fired:
    """What one scan of one workflow's tick did."""

    workflow_id: uuid.UUID
    tick: datetime
    opened: int = 0  # runs opened by this scan
    existing: int = 0  # audience contacts whose run for this tick was already open
    outside: int = 0  # contacts the audience expression did not select
    audience_errors: int = 0  # contacts for which the expression raised (they do not match)
    first_error: str | None = None
    complete: bool = False  # every contact considered and the tick recorded as done


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    workflow_id: uuid.UUID
    workspace_id: uuid.UUID
    key: str
    version_id: uuid.UUID | None
    activated_at: datetime | None
    trigger: dict[str, Any]
    tick: datetime


def tick(runtime: Runtime, *, now: datetime, workspace_id: uuid.UUID | None = None) -> int:
    """Fire the due tick of every ACTIVE schedule workflow of every workspace (or of
    `workspace_id` only: the demo's back-dated ticks must fire nobody else's): one run per
    audience contact. Returns how many runs it opened. Safe to call from any number of
    workers at once, and again after a crash: the runs' idempotency keys decide."""
    with session_scope(runtime.sessions) as session:
        plans = [plan for workflow, definition in schedule_repo.list_active(session)
                 if workspace_id in (None, workflow.workspace_id)
                 and (plan := _plan(workflow, definition, now=now)) is not None]
    opened = 0
    for plan in plans:
        try:
            opened += _fire(runtime, plan, now=now).opened
        except Exception:  # one workflow's failure must not starve the others; retried next poll
            log.exception("schedule of workflow %s failed at tick %s", plan.key,
                          plan.tick.isoformat(), extra=_extra(plan))
    return opened


def late_seconds(session: Session, *, now: datetime) -> float:
    """How long the most overdue tick of any active schedule has been due without firing;
    0 when none is due."""
    plans = [plan for workflow, definition in schedule_repo.list_active(session)
             if (plan := _plan(workflow, definition, now=now)) is not None]
    return max(((now - plan.tick).total_seconds() for plan in plans), default=0.0)


def _plan(workflow: Workflow, definition: dict[str, Any], *, now: datetime) -> _Plan | None:
    trigger = dict(definition.get("trigger") or {})
    try:
        due = due_tick(trigger, now=now, not_before=workflow.activated_at or workflow.updated_at)
    except Exception:  # a definition that slipped past validation; the others still fire
        log.exception("schedule of workflow %s cannot be read", workflow.key,
                      extra={"workflow_id": str(workflow.id)})
        return None
    if due is None or (workflow.schedule_last_tick is not None
                       and workflow.schedule_last_tick >= due):
        return None
    return _Plan(workflow_id=workflow.id, workspace_id=workflow.workspace_id, key=workflow.key,
                 version_id=workflow.current_version_id, activated_at=workflow.activated_at,
                 trigger=trigger, tick=due)


def _fire(runtime: Runtime, plan: _Plan, *, now: datetime) -> Fired:
    fired = Fired(workflow_id=plan.workflow_id, tick=plan.tick)
    after: uuid.UUID | None = None
    while not fired.complete:
        with session_scope(runtime.sessions) as session:
            workflow = schedule_repo.lock_workflow(session, plan.workflow_id)
            if workflow is None or not _unchanged(workflow, plan):
                # Deactivated, edited or held by another scheduler: look again next poll.
                log.info("schedule of workflow %s: tick %s left for a later poll", plan.key,
                         plan.tick.isoformat(), extra=_extra(plan))
                break
            if after is None and _trigger_changed_since(session, plan):
                schedule_repo.record_tick(session, plan.workflow_id, plan.tick)
                log.info("schedule of workflow %s: tick %s passed over, it predates the "
                         "current trigger", plan.key, plan.tick.isoformat(), extra=_extra(plan))
                return fired
            contacts = schedule_repo.contacts_after(session, plan.workspace_id, after=after,
                                                    limit=BATCH)
            _enroll(session, workflow, contacts, plan, fired, now=now)
            if len(contacts) < BATCH:
                schedule_repo.record_tick(session, plan.workflow_id, plan.tick)
                audience = plan.trigger.get("audience")
                schedule_repo.add_tick(session, ScheduleTick(
                    workspace_id=plan.workspace_id, workflow_id=plan.workflow_id,
                    tick=plan.tick, fired_at=now,
                    audience=None if audience is None else str(audience),
                    opened=fired.opened, existing=fired.existing, outside=fired.outside,
                    audience_errors=fired.audience_errors))
                fired.complete = True
            else:
                after = contacts[-1].id
    _report(plan, fired)
    return fired


def _unchanged(workflow: Workflow, plan: _Plan) -> bool:
    return (workflow.status == "ACTIVE" and workflow.current_version_id == plan.version_id
            and workflow.activated_at == plan.activated_at)


def _trigger_changed_since(session: Session, plan: _Plan) -> bool:
    """Whether the trigger took its current form after the tick. Such a tick belongs to the
    old schedule: changing a cron must not fire the new one's latest past tick at once."""
    since: datetime | None = None
    for created_at, definition in schedule_repo.version_definitions(session, plan.workflow_id):
        if dict(definition.get("trigger") or {}) != plan.trigger:
            break
        since = created_at
    return since is not None and since > plan.tick


def _enroll(session: Session, workflow: Workflow, contacts: Sequence[Contact], plan: _Plan,
            fired: Fired, *, now: datetime) -> None:
    audience = plan.trigger.get("audience")
    matched = [c for c in contacts if audience is None or _matches(str(audience), c, fired)]
    fired.outside += len(contacts) - len(matched)
    keys = {contact.id: idempotency_key(plan.tick, contact.id) for contact in matched}
    # Spares a rescan the inserts; it decides nothing (a concurrent scheduler may insert
    # between this read and our insert, and then the unique constraint answers).
    existing = schedule_repo.existing_keys(session, workflow.id, list(keys.values()))
    schedule = plan.trigger.get("cron") or plan.trigger.get("at")
    for contact in matched:
        if keys[contact.id] in existing:
            fired.existing += 1
            continue
        enrolled = run_service.enroll(
            session, workflow=workflow, contact=contact, trigger_type="schedule",
            event={"scheduled_for": plan.tick.isoformat(), "schedule": str(schedule)},
            now=now, idempotency_key=keys[contact.id],
        )
        if enrolled.duplicate:
            fired.existing += 1
        else:
            fired.opened += 1


def _matches(audience: str, contact: Contact, fired: Fired) -> bool:
    try:
        return bool(templates.evaluate(audience, {"contact": contact_repo.as_variables(contact)}))
    except Exception as exc:  # an operator's expression: whatever it raises means "no match"
        fired.audience_errors += 1
        if fired.first_error is None:
            fired.first_error = f"contact {contact.id}: {exc}"
        return False


def _report(plan: _Plan, fired: Fired) -> None:
    extra = {**_extra(plan), "opened": fired.opened, "existing": fired.existing,
             "outside": fired.outside, "audience_errors": fired.audience_errors}
    log.info("schedule of workflow %s, tick %s: %d runs opened, %d already open, "
             "%d contacts outside the audience", plan.key, plan.tick.isoformat(), fired.opened,
             fired.existing, fired.outside, extra=extra)
    if fired.audience_errors:
        log.warning("schedule of workflow %s, tick %s: the audience expression failed for %d "
                    "contacts, which therefore do not match (first: %s)", plan.key,
                    plan.tick.isoformat(), fired.audience_errors, fired.first_error, extra=extra)


def _extra(plan: _Plan) -> dict[str, Any]:
    return {"workflow_id": str(plan.workflow_id), "workspace_id": str(plan.workspace_id),
            "tick": plan.tick.isoformat()}
