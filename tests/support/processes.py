"""Real worker processes for durability tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from relayflow.config import Settings
from tests.conftest import TEST_SECRET_KEY


def start_worker(settings: Settings, *, fault: str | None = None,
                 lease_seconds: float = 2.0) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RELAYFLOW_DATABASE_URL": settings.database_url,
        "RELAYFLOW_SECRET_KEY": TEST_SECRET_KEY,
        "RELAYFLOW_LEASE_SECONDS": str(lease_seconds),
        "RELAYFLOW_HEARTBEAT_SECONDS": str(lease_seconds / 4),
        "RELAYFLOW_POLL_SECONDS": "0.05",
        "RELAYFLOW_BATCH_SIZE": "8",
        "RELAYFLOW_LOG_LEVEL": "WARNING",
    }
    # The worker may reach what the tests' settings allow (local test servers).
    allow = getattr(settings, "network_allow", "")
    if allow:
        env["RELAYFLOW_NETWORK_ALLOW"] = allow
    env.pop("RELAYFLOW_FAULT", None)
    if fault:
        env["RELAYFLOW_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "relayflow", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
