"""Real worker processes for durability tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from relayflow.config import Settings
from relayflow.storage.db import make_engine
from relayflow.storage.models import WorkerBeat
from tests.conftest import TEST_SECRET_KEY

READY_TIMEOUT_SECONDS = 30.0
READY_FROM_LEASE_SECONDS = 2.0


def start_worker(settings: Settings, *, fault: str | None = None,
                 lease_seconds: float = 2.0, concurrency: int = 1,
                 ready: bool | None = None) -> subprocess.Popen[bytes]:
    """A `relayflow worker` process on the test's database.

    With `ready` it is returned once it has announced itself (its first beat), so that
    several workers started in a row all race for what is enqueued next. Left unset, that
    is waited for when the lease is 2 s or longer: the scenarios that kill and replace
    workers at a fast pace use shorter leases, and count on a replacement being started
    at once, while runs are still pending.

    `concurrency` 1 (the default) performs one effect at a time, each fenced just before it
    starts: the fault scenarios count on runs still being pending while they start and
    kill workers, which a worker with many effects in flight would have finished. Tests
    of concurrent effects ask for more."""
    env = {
        **os.environ,
        "RELAYFLOW_DATABASE_URL": settings.database_url,
        "RELAYFLOW_SECRET_KEY": TEST_SECRET_KEY,
        "RELAYFLOW_LEASE_SECONDS": str(lease_seconds),
        "RELAYFLOW_HEARTBEAT_SECONDS": str(lease_seconds / 4),
        "RELAYFLOW_POLL_SECONDS": "0.05",
        "RELAYFLOW_BATCH_SIZE": "8",
        "RELAYFLOW_WORKER_CONCURRENCY": str(concurrency),
        "RELAYFLOW_LOG_LEVEL": "WARNING",
    }
    # The worker may reach what the tests' settings allow (local test servers).
    allow = getattr(settings, "network_allow", "")
    if allow:
        env["RELAYFLOW_NETWORK_ALLOW"] = allow
    env.pop("RELAYFLOW_FAULT", None)
    if fault:
        env["RELAYFLOW_FAULT"] = fault
    process = subprocess.Popen([sys.executable, "-m", "relayflow", "worker"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if ready if ready is not None else lease_seconds >= READY_FROM_LEASE_SECONDS:
        _wait_ready(settings.database_url, process)
    return process


def _wait_ready(database_url: str, process: subprocess.Popen[bytes]) -> None:
    """Return once the worker has announced itself in the database (its first beat comes
    right before its first poll), so that several workers started in a row all race for
    what is enqueued next. Gives up quietly if the worker exits or the database is away
    (a fault test may start one during an outage)."""
    engine = make_engine(database_url)
    pattern = f"%:{process.pid}:%"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as connection:
                if connection.scalar(select(WorkerBeat.name).where(
                        WorkerBeat.name.like(pattern))) is not None:
                    return
            time.sleep(0.02)
    except OperationalError:
        return
    finally:
        engine.dispose()


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
