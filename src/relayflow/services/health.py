"""Whether this server can do its work (/readyz), and what the queue and the workers look
like right now (the gauges of /metrics).

Readiness asks, in one read: is the database there, is its schema the one this code was
built for, where this server runs workers has one of them beaten within two lease periods,
and has no schedule tick been left unfired for longer than the scheduler's poll allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from relayflow.services import schedule as schedule_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope
from relayflow.storage.repositories import operations


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """What readiness holds this server to."""

    workers: bool  # this server runs workers, so one must be beating
    lease_seconds: float
    schedule_poll_seconds: float


def readiness(runtime: Runtime, expect: Expect) -> list[Check]:
    """Every check's result (the caller bounds how long the database may take)."""
    now = runtime.clock()
    checks = [Check("database", True, "reachable")]
    with read_scope(runtime.sessions) as session:
        revision, head = operations.schema_revision(session), operations.head_revision()
        if revision == head:
            checks.append(Check("schema", True, f"at {head}"))
        else:
            checks.append(Check("schema", False, f"at {revision or 'nothing'}, this version "
                                f"needs {head}: run `relayflow migrate`"))
            return checks
        if not expect.workers:
            checks.append(Check("workers", True, "not checked: this server runs no workers"))
            return checks
        window = 2 * expect.lease_seconds
        beats = operations.beats(session, within_seconds=window)
        if beats.alive:
            checks.append(Check("workers", True, f"{beats.alive} beating"))
        else:
            last = ("never" if beats.newest_age is None
                    else f"{beats.newest_age:.0f} s ago")
            checks.append(Check("workers", False, f"no worker beat within {window:g} s "
                                                  f"(the last: {last})"))
        late = schedule_service.late_seconds(session, now=now)
        allowed = 2 * expect.schedule_poll_seconds
        checks.append(Check("scheduler", late <= allowed,
                            "no tick overdue" if late == 0 else
                            f"a tick has waited {late:.0f} s to fire (allowed {allowed:g} s)"))
    return checks


@dataclass(frozen=True, slots=True)
class Gauges:
    queue: operations.Queue
    oldest_due_seconds: float
    workers: operations.Beats
    schedule_late_seconds: float


def gauges(runtime: Runtime, *, lease_seconds: float) -> Gauges:
    now = runtime.clock()
    with read_scope(runtime.sessions) as session:
        queue = operations.queue(session, now=now)
        beats = operations.beats(session, within_seconds=2 * lease_seconds)
        late = schedule_service.late_seconds(session, now=now)
    oldest = 0.0 if queue.oldest_due is None else _seconds(now, queue.oldest_due)
    return Gauges(queue=queue, oldest_due_seconds=oldest, workers=beats,
                  schedule_late_seconds=late)


def _seconds(now: datetime, then: datetime) -> float:
    return max(0.0, (now - then).total_seconds())
