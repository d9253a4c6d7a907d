"""PostgreSQL workers wake on LISTEN/NOTIFY instead of waiting for the next poll."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.support.flows import install, start, statuses
from tests.support.processes import stop, wait_until

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]


class TestNotify:
    def test_an_idle_worker_picks_up_new_work_long_before_its_poll(self, settings, runtime,
                                                                   workspace):
        install(runtime, workspace.id, {"key": "ping", "trigger": {"type": "manual"},
                                        "start": "done", "nodes": {"done": {"type": "END"}}})
        env = {**os.environ, "RELAYFLOW_DATABASE_URL": settings.database_url,
               "RELAYFLOW_SECRET_KEY": TEST_SECRET_KEY, "RELAYFLOW_POLL_SECONDS": "30"}
        worker = subprocess.Popen([sys.executable, "-m", "relayflow", "worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)  # let it start, find nothing, and settle into its 30 s wait
            started = time.monotonic()
            start(runtime, workspace.id, "ping", email="n@example.com")
            wait_until(lambda: statuses(runtime) == {"COMPLETED": 1}, timeout=10,
                       what="the notified worker to finish the run")
            assert time.monotonic() - started < 5
        finally:
            stop(worker)
