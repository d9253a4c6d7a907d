"""`relayflow prune`: keep history for a while, then let it go."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from relayflow.engine.durations import parse_duration
from relayflow.errors import InvalidInput
from relayflow.services import frequency as frequency_service
from relayflow.services import rate_limit as rate_limit_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.repositories import retention as retention_repo


@dataclass(frozen=True, slots=True)
class Pruned:
    cutoff: datetime
    runs: int
    attempts: int


def prune(runtime: Runtime, *, older_than: str) -> Pruned:
    """Delete finished runs (with their steps) and delivery attempts older than
    `older_than` (e.g. `90d`). Runs still PENDING or RUNNING are never touched."""
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    cutoff = runtime.clock() - age
    with session_scope(runtime.sessions) as session:  # counters whose window has passed
        rate_limit_service.prune(session, now=runtime.clock())
        frequency_service.forget_old(session, now=runtime.clock())
    runs = attempts = 0
    while True:  # one short transaction per batch
        with session_scope(runtime.sessions) as session:
            n = retention_repo.delete_runs_finished_before(session, cutoff)
            m = retention_repo.delete_attempts_created_before(session, cutoff)
        runs, attempts = runs + n, attempts + m
        if n == 0 and m == 0:
            return Pruned(cutoff, runs, attempts)
