"""At send time the worker holds SMTP to the outbound policy and the provider deadline.

The policy is the instance's allow-list plus the workspace's, read at each send; the
deadline is Runtime.provider_timeout_seconds (RELAYFLOW_PROVIDER_TIMEOUT_SECONDS)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from relayflow.delivery.egress import AllowList
from relayflow.services import network as network_service
from relayflow.storage.db import session_scope
from tests.support import smtpserver, trickle
from tests.support.flows import attempts_of, install, run_of, set_provider, start
from tests.support.worker import drain

FLOW = {"key": "mail", "trigger": {"type": "manual"}, "start": "send", "nodes": {
    "send": {"type": "SEND_MESSAGE", "channel": "email", "to": "ada@example.com",
             "subject": "Hi", "body": "Hello", "next": "done"},
    "done": {"type": "END"}}}


def _smtp(runtime, workspace, port: int) -> None:
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
        "from": "ops@relay.test", "timeout": 120})
    install(runtime, workspace.id, FLOW)


class TestAllowList:
    def test_loopback_is_refused_for_good_without_an_allow_list(self, runtime, workspace):
        runtime.network_allow = AllowList()
        sink = smtpserver.start()
        try:
            _smtp(runtime, workspace, sink.port)
            [run_id] = start(runtime, workspace.id, "mail")
            drain(runtime)
            [attempt] = attempts_of(runtime, run_id)  # not retried
            assert attempt.status == "FAILED"
            assert "127.0.0.1 is loopback" in (attempt.error or "")
            assert sink.raw == []
            with session_scope(runtime.sessions) as session:
                network_service.put(session, workspace_id=workspace.id, allow=["127.0.0.1"],
                                    now=datetime.now(UTC))
            [again] = start(runtime, workspace.id, "mail")
            drain(runtime)
            assert [a.status for a in attempts_of(runtime, again)] == ["SENT"]
            assert len(sink.raw) == 1
        finally:
            sink.close()


class TestDeadline:
    @pytest.fixture(autouse=True)
    def _short(self, runtime):
        runtime.provider_timeout_seconds = 1.5

    def test_after_data_the_outcome_is_unknown_and_not_retried(self, runtime, workspace):
        server = trickle.start("after_data", delay=0.1)
        try:
            _smtp(runtime, workspace, server.port)
            [run_id] = start(runtime, workspace.id, "mail")
            began = time.monotonic()
            drain(runtime)
            assert time.monotonic() - began < 10  # the trickle alone lasts 60 s
            [attempt] = attempts_of(runtime, run_id)
            assert attempt.status == "FAILED"
            assert "outcome unknown" in (attempt.error or "")
            assert run_of(runtime, run_id).status == "COMPLETED"
        finally:
            server.close()

    def test_before_data_it_is_retried(self, runtime, workspace):
        server = trickle.start("greeting", delay=0.1)
        try:
            _smtp(runtime, workspace, server.port)
            [run_id] = start(runtime, workspace.id, "mail")
            began = time.monotonic()
            drain(runtime)
            assert time.monotonic() - began < 10
            attempts = sorted(attempts_of(runtime, run_id), key=lambda a: a.attempt_number)
            assert [a.status for a in attempts] == ["FAILED", "QUEUED"]
            assert "1.5 s deadline" in (attempts[0].error or "")
            assert run_of(runtime, run_id).status == "RUNNING"  # parked until the retry
        finally:
            server.close()
