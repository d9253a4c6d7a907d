"""What a worker process tells the database about itself: that it is alive (its beat) and
that it still holds the runs it claimed (its leases)."""

from __future__ import annotations

from collections.abc import Sequence

from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.repositories import job as job_repo
from relayflow.storage.repositories import worker as worker_repo
from relayflow.storage.repositories.job import Lease

__all__ = ["Lease", "alive", "beat", "forget"]


def beat(runtime: Runtime, *, name: str, leases: Sequence[Lease] = (),
         lease_seconds: float = 0.0) -> int:
    """Record that worker `name` is alive and extend the leases it still holds, in one
    transaction; how many leases it still held."""
    with session_scope(runtime.sessions) as session:
        worker_repo.beat(session, name)
        if not leases:
            return 0
        return job_repo.renew(session, worker=name, leases=leases, lease_seconds=lease_seconds)


def forget(runtime: Runtime, *, name: str) -> None:
    with session_scope(runtime.sessions) as session:
        worker_repo.forget(session, name)


def alive(runtime: Runtime, *, within_seconds: float) -> list[str]:
    with read_scope(runtime.sessions) as session:
        return worker_repo.alive(session, within_seconds=within_seconds)
