"""Three schedulers racing over 100 ticks fire each tick exactly once per contact.

Each scheduler has its own engine and connection pool (as separate worker processes
would) and its own clock; a barrier lines them up so all three try every tick at the same
moment, which is the worst case for a double fire. The clock is injected, so 100 ticks of
a once-a-minute cron take seconds, not hours.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services import schedule as schedule_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from relayflow.storage.models import WorkflowRun
from tests.conftest import TEST_SECRET_KEY
from tests.support.flows import install

SCHEDULERS = 3
TICKS = 100
CONTACTS = 5
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVERY_MINUTE = {"key": "pulse", "trigger": {"type": "schedule", "cron": "* * * * *",
                                            "timezone": "UTC"},
                "start": "done", "nodes": {"done": {"type": "END"}}}


def _scheduler_runtime(settings: Settings) -> Runtime:
    engine = make_engine(settings.database_url)
    return Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(TEST_SECRET_KEY))


@pytest.mark.slow
def test_three_schedulers_fire_each_tick_once_per_contact(settings, runtime, workspace):
    runtime.clock = lambda: START - timedelta(seconds=30)  # type: ignore[method-assign]
    with session_scope(runtime.sessions) as session:
        for i in range(CONTACTS):
            contact_service.resolve(session, workspace_id=workspace.id,
                                    spec={"email": f"pulse{i}@example.com"}, now=runtime.clock())
    install(runtime, workspace.id, EVERY_MINUTE)
    runtimes = [_scheduler_runtime(settings) for _ in range(SCHEDULERS)]
    barrier = threading.Barrier(SCHEDULERS)
    fired = Counter[int]()
    errors: list[BaseException] = []

    def scheduler(index: int) -> None:
        own = runtimes[index]
        try:
            for tick in range(TICKS):
                now = START + timedelta(minutes=tick, seconds=1)
                own.clock = lambda now=now: now  # type: ignore[method-assign]
                barrier.wait(timeout=30)
                fired[index] += schedule_service.tick(own, now=now)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=scheduler, args=(i,)) for i in range(SCHEDULERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for own in runtimes:
        own.dispose()
    assert errors == []
    with session_scope(runtime.sessions) as session:
        keys = session.scalars(select(WorkflowRun.idempotency_key)).all()
    per_tick = Counter(key.removeprefix("schedule:").rsplit(":", 1)[0] for key in keys if key)
    assert len(keys) == TICKS * CONTACTS
    assert len(set(keys)) == TICKS * CONTACTS
    assert len(per_tick) == TICKS
    assert set(per_tick.values()) == {CONTACTS}
    # What the schedulers report opening adds up to the same: none counted a duplicate.
    assert sum(fired.values()) == TICKS * CONTACTS
