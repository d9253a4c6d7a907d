"""Lease helpers: leases are timed by the database's clock, which a test cannot move."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Job

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def expire_leases(runtime: Runtime) -> None:
    """Every held lease lapses, as if its worker had stopped renewing it long ago."""
    with session_scope(runtime.sessions) as session:
        session.execute(update(Job).where(Job.lease_expires_at.is_not(None))
                        .values(lease_expires_at=LONG_AGO))
