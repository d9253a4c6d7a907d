"""A worker SIGKILLed between handing a message to the provider and recording it.

SMTP cannot be asked whether a message arrived, so an interrupted SMTP send is never
repeated (the attempt is recorded as FAILED with an "outcome unknown" error). An HTTP
provider gets the same Idempotency-Key again and drops the repeat. Either way the
recipient never receives a message twice.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from relayflow.worker.loop import Worker
from tests.support import smtpserver
from tests.support.flows import attempts_of, install, run_of, set_provider, start
from tests.support.processes import start_worker, wait_until

pytestmark = pytest.mark.slow
TRIALS = 20
FLOW = {"key": "mail", "trigger": {"type": "manual"}, "start": "send", "nodes": {
    "send": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hello",
             "body": "Once only", "next": "done"},
    "done": {"type": "END"}}}


def _crash_then_recover(settings, runtime, run_id) -> None:
    doomed = start_worker(settings, fault="after_effect", lease_seconds=0.5)
    code = doomed.wait(90)
    assert code == -signal.SIGKILL, (doomed.stderr.read() if doomed.stderr else b"")[-2000:]
    # The next worker walks in this process (the claim and walk of `relayflow worker`'s
    # loop), without a process to start and stop at every trial (2 s each): it takes the
    # run over once the dead worker's lease has lapsed.
    rescuer = Worker(runtime, settings.model_copy(update={"lease_seconds": 0.5,
                                                          "worker_concurrency": 1}))

    def rescued() -> bool:
        rescuer.run_once()
        return run_of(runtime, run_id).status == "COMPLETED"

    wait_until(rescued, timeout=30, what="the rescuer to finish the run")


class TestSmtpCrash:
    def test_the_sink_never_receives_a_message_twice(self, settings, runtime, workspace):
        sink = smtpserver.start()
        try:
            set_provider(runtime, workspace.id, "email", {
                "type": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
                "from": "ops@relay.test"})
            install(runtime, workspace.id, FLOW)
            run_ids = []
            for trial in range(TRIALS):
                [run_id] = start(runtime, workspace.id, "mail", email=f"t{trial}@example.com")
                run_ids.append(run_id)
                _crash_then_recover(settings, runtime, run_id)
            received = Counter(sink.message_ids())
            assert len(received) == TRIALS  # every message did go out, before each crash
            assert max(received.values()) == 1
            for run_id in run_ids:
                [attempt] = attempts_of(runtime, run_id)
                assert attempt.status == "FAILED"
                assert "outcome unknown" in (attempt.error or "")
        finally:
            sink.close()


class TestHttpCrash:
    def test_the_repeat_carries_the_same_key_and_is_dropped(self, settings, runtime, workspace,
                                                             http_server):
        set_provider(runtime, workspace.id, "email", {
            "type": "http", "url": f"{http_server.url}/messages",
            "body": {"to": "{{ to }}", "text": "{{ body }}"}})
        install(runtime, workspace.id, FLOW)
        run_ids = []
        for trial in range(5):
            [run_id] = start(runtime, workspace.id, "mail", email=f"h{trial}@example.com")
            run_ids.append(run_id)
            _crash_then_recover(settings, runtime, run_id)
        assert len(http_server.requests) == 10  # each sent twice...
        assert len(http_server.delivered) == 5  # ...and delivered once
        for run_id in run_ids:
            [attempt] = attempts_of(runtime, run_id)
            assert attempt.status == "SENT"
