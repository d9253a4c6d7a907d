"""SEND_MESSAGE through real providers: an aiosmtpd server and an HTTP provider app."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.services.test_integration import database_text
from tests.support import smtpserver
from tests.support.flows import (
    attempts_of,
    install,
    run_of,
    set_provider,
    set_secret,
    start,
    steps_of,
    suppress,
)
from tests.support.worker import drain

SMTP_PASSWORD = "smtp-canary-pass-5d1e"
SMS_TOKEN = "sms-canary-token-77ab"


def _email_flow(**send: object) -> dict:
    node = {"type": "SEND_MESSAGE", "channel": "email",
            "subject": "Welcome, {{ contact.first_name }}",
            "body": "Plan: {{ contact.plan }}", "html": "<p>Plan: <b>{{ contact.plan }}</b></p>",
            "next": "done", **send}
    return {"key": "mail", "trigger": {"type": "manual"}, "start": "send",
            "nodes": {"send": node, "done": {"type": "END"}}}


@pytest.fixture
def sink():
    server = smtpserver.start()
    yield server
    server.close()


@pytest.fixture
def smtp(runtime, workspace, sink):
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
        "from": "ops@relay.test", "timeout": 5})
    runtime.delivery_retry_base_seconds = 60
    return sink


def _later(runtime, hours: float = 2) -> None:
    base = runtime.clock()
    runtime.clock = lambda: base + timedelta(hours=hours)


class TestSmtp:
    def test_the_received_message_is_the_stored_rendering(self, runtime, workspace, smtp):
        install(runtime, workspace.id, _email_flow())
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com",
                         attributes={"first_name": "Ada", "plan": "pro"})
        drain(runtime)
        [attempt] = attempts_of(runtime, run_id)
        [received] = smtp.messages
        assert attempt.status == "SENT"
        assert attempt.provider == "smtp"
        assert received["Subject"] == attempt.subject == "Welcome, Ada"
        assert received["To"] == attempt.recipient == "ada@example.com"
        assert received["Message-ID"] == attempt.provider_message_id
        text = received.get_body(preferencelist=("plain",)).get_content().strip()
        html = received.get_body(preferencelist=("html",)).get_content().strip()
        assert text == attempt.body == "Plan: pro"
        assert html == attempt.html == "<p>Plan: <b>pro</b></p>"
        step = steps_of(runtime, run_id)[1]
        assert step.delivery_attempt_id == attempt.id
        assert step.output["status"] == "SENT"

    def test_451_then_250_makes_two_attempts(self, runtime, workspace, smtp):
        install(runtime, workspace.id, _email_flow())
        smtp.script.append("451 4.3.0 Try again later")
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com",
                         attributes={"first_name": "Ada", "plan": "pro"})
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "RUNNING"  # parked until the retry is due
        assert run.wake_at is not None
        _later(runtime)
        drain(runtime)
        first, second = sorted(attempts_of(runtime, run_id), key=lambda a: a.attempt_number)
        assert (first.status, first.attempt_number, first.retry_of) == ("FAILED", 1, None)
        assert "451" in (first.error or "")
        assert (second.status, second.attempt_number, second.retry_of) == ("SENT", 2, first.id)
        assert second.body == first.body
        assert len(smtp.messages) == 1
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert steps_of(runtime, run_id)[1].delivery_attempt_id == second.id

    def test_550_fails_without_retry_and_the_run_continues(self, runtime, workspace, smtp):
        install(runtime, workspace.id, _email_flow())
        smtp.script.append("550 5.1.1 No such user")
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com",
                         attributes={"first_name": "Ada", "plan": "pro"})
        drain(runtime)
        [attempt] = attempts_of(runtime, run_id)
        assert attempt.status == "FAILED"
        assert "550" in (attempt.error or "")
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert steps_of(runtime, run_id)[1].output["status"] == "FAILED"

    def test_on_failure_fail_fails_the_run(self, runtime, workspace, smtp):
        install(runtime, workspace.id, _email_flow(on_failure="fail"))
        smtp.script.append("550 5.1.1 No such user")
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com",
                         attributes={"first_name": "Ada", "plan": "pro"})
        drain(runtime)
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert "550" in (run.error or "")

    def test_provider_down_retries_with_backoff_then_fails(self, runtime, workspace):
        set_provider(runtime, workspace.id, "email", {
            "type": "smtp", "host": "127.0.0.1", "port": smtpserver._free_port(), "tls": "none",
            "from": "ops@relay.test", "timeout": 2})
        runtime.delivery_max_attempts = 3
        runtime.delivery_retry_base_seconds = 60
        install(runtime, workspace.id, _email_flow())
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com",
                         attributes={"first_name": "Ada", "plan": "pro"})
        waits = []
        for _ in range(3):
            drain(runtime)
            run = run_of(runtime, run_id)
            if run.wake_at is not None and run.status == "RUNNING":
                waits.append(run.wake_at - runtime.clock())
            _later(runtime, hours=3)
        attempts = sorted(attempts_of(runtime, run_id), key=lambda a: a.attempt_number)
        assert [a.attempt_number for a in attempts] == [1, 2, 3]
        assert all(a.status == "FAILED" for a in attempts)
        assert [a.retry_of for a in attempts] == [None, attempts[0].id, attempts[1].id]
        assert len(waits) == 2
        # base 60 s, doubling, "equal jitter"; a few seconds pass between send and check
        assert timedelta(seconds=25) <= waits[0] <= timedelta(seconds=60)
        assert timedelta(seconds=55) <= waits[1] <= timedelta(seconds=120)
        assert run_of(runtime, run_id).status == "COMPLETED"


class TestSuppression:
    def test_a_bounced_contact_gets_a_suppressed_attempt_and_no_send(self, runtime, workspace,
                                                                     smtp):
        install(runtime, workspace.id, _email_flow())
        [run_id] = start(runtime, workspace.id, "mail", email="bo@example.com",
                         attributes={"first_name": "Bo", "plan": "free"})
        suppress(runtime, "bo@example.com", "email", "bounced")
        drain(runtime)
        [attempt] = attempts_of(runtime, run_id)
        assert (attempt.status, attempt.suppressed_by) == ("SUPPRESSED", "bounced")
        assert smtp.messages == []
        assert run_of(runtime, run_id).status == "COMPLETED"

    def test_unsubscribing_while_the_run_waits_stops_the_message(self, runtime, workspace,
                                                                 smtp):
        flow = _email_flow()
        flow["start"] = "pause"
        flow["nodes"]["pause"] = {"type": "WAIT", "duration": "1h", "next": "send"}
        install(runtime, workspace.id, flow)
        [run_id] = start(runtime, workspace.id, "mail", email="cy@example.com",
                         attributes={"first_name": "Cy", "plan": "pro"})
        drain(runtime)
        suppress(runtime, "cy@example.com", "email", "unsubscribed")
        _later(runtime)
        drain(runtime)
        [attempt] = attempts_of(runtime, run_id)
        assert (attempt.status, attempt.suppressed_by) == ("SUPPRESSED", "unsubscribed")
        assert smtp.messages == []


class TestHttpProvider:
    def test_sms_through_an_http_api_with_its_message_id(self, runtime, workspace,
                                                         http_server):
        set_secret(runtime, workspace.id, "SMS_TOKEN", SMS_TOKEN)
        set_provider(runtime, workspace.id, "sms", {
            "type": "http", "url": f"{http_server.url}/messages",
            "auth_header_secret": "SMS_TOKEN", "body": {"to": "{{ to }}", "text": "{{ body }}"},
            "message_id_path": "body.id"})
        install(runtime, workspace.id, {
            "key": "sms", "trigger": {"type": "manual"}, "start": "send", "nodes": {
                "send": {"type": "SEND_MESSAGE", "channel": "sms", "to": "+14155550123",
                         "body": "Code {{ event.code }}", "next": "done"},
                "done": {"type": "END"}}})
        [run_id] = start(runtime, workspace.id, "sms", email="d@example.com",
                         event={"code": "4242"})
        drain(runtime)
        [attempt] = attempts_of(runtime, run_id)
        assert (attempt.status, attempt.provider_message_id) == ("SENT", "msg-1")
        [request] = http_server.requests
        assert json.loads(request.body) == {"to": "+14155550123", "text": "Code 4242"}
        assert request.headers["Idempotency-Key"] == f"relayflow-attempt-{attempt.id}"
        assert SMS_TOKEN not in database_text(runtime)


class TestSecretsStayOut:
    def test_smtp_password_is_nowhere_in_the_database(self, runtime, workspace, tmp_path):
        server = smtpserver.start(tmp_path, login=("ops", SMTP_PASSWORD))
        try:
            set_secret(runtime, workspace.id, "SMTP_PASS", SMTP_PASSWORD)
            set_provider(runtime, workspace.id, "email", {
                "type": "smtp", "host": "localhost", "port": server.port, "tls": "starttls",
                "username": "ops", "password_secret": "SMTP_PASS", "from": "ops@relay.test",
                "ca_file": server.ca_file})
            install(runtime, workspace.id, _email_flow())
            [run_id] = start(runtime, workspace.id, "mail", email="e@example.com",
                             attributes={"first_name": "E", "plan": "pro"})
            drain(runtime)
            assert attempts_of(runtime, run_id)[0].status == "SENT"
            assert server.auth_attempts == [("ops", SMTP_PASSWORD)]
            assert SMTP_PASSWORD not in database_text(runtime)
        finally:
            server.close()
