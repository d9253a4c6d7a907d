"""One run whose progress cannot be written must not hold the runs claimed beside it.

A real worker process claims runs in batches of 8 and writes a batch's progress in one
transaction. With RELAYFLOW_FAULT=refuse_write:boom every write of a step of node `boom`
fails, as a value the database refuses would. Before, that failed the whole batch's write
on every claim: the runs claimed with the bad one never moved. Now the batch is written
run by run after such a failure: the bad run alone is set aside (and tried again after its
lease), the others finish, and the worker lives on.
"""

from __future__ import annotations

import time

import pytest

from tests.support.flows import install, run_of, start
from tests.support.processes import start_worker, stop, wait_until

pytestmark = pytest.mark.slow
GOOD = {"key": "good", "trigger": {"type": "manual"}, "start": "tag", "nodes": {
    "tag": {"type": "UPDATE_CONTACT", "set": {"seen": "yes"}, "next": "send"},
    "send": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi", "body": "Hello",
             "next": "done"},
    "done": {"type": "END"}}}
BAD = {"key": "bad", "trigger": {"type": "manual"}, "start": "boom", "nodes": {
    "boom": {"type": "UPDATE_CONTACT", "set": {"seen": "yes"}, "next": "done"},
    "done": {"type": "END"}}}


def test_a_run_whose_writes_fail_is_set_aside_alone(settings, runtime, workspace):
    install(runtime, workspace.id, GOOD)
    install(runtime, workspace.id, BAD)
    good = start(runtime, workspace.id, "good", email="g@example.com", count=3)
    [bad] = start(runtime, workspace.id, "bad", email="bad@example.com")
    good += start(runtime, workspace.id, "good", email="h@example.com", count=3)

    began = time.monotonic()
    worker = start_worker(settings, fault="refuse_write:boom", lease_seconds=2.0)
    try:
        # Well inside one lease: the good runs are not waiting for the bad one's lease.
        wait_until(lambda: all(run_of(runtime, r).status == "COMPLETED" for r in good),
                   timeout=30, what="the runs claimed beside the bad one to complete")
        took = time.monotonic() - began
        time.sleep(2.5)  # past a lease: the bad run is claimed again, and set aside again
        assert worker.poll() is None, "the worker died"
    finally:
        stop(worker)
    stderr = (worker.stderr.read() if worker.stderr else b"").decode()
    print(f"\nbatch isolation: 6 good runs beside one whose writes fail, all COMPLETED "  # noqa: T201
          f"{took:.2f} s after the worker started")
    assert run_of(runtime, bad).status in ("PENDING", "RUNNING")
    assert "InjectedFault" in stderr  # set aside loudly: a write that fails is a bug
    assert stderr.count("run set aside") >= 2  # and tried again after its lease
