from __future__ import annotations

from typing import Any

from relayflow.engine.outcome import Advance, Fail, Perform, SendMessage, SendResult
from relayflow.engine.stepper import resume, step
from tests.engine.builders import CONTACT, graph_of, make_ctx


def _graph(**over: Any) -> Any:
    node = {"type": "SEND_MESSAGE", "channel": "email", "next": "wait_2d",
            "subject": "Welcome, {{ contact.first_name | default('there') }}",
            "body": "Your tier: {{ steps.lookup.tier | default('standard') }}"}
    return graph_of({"welcome": {**node, **over}})


class TestStep:
    def test_renders_subject_and_body_and_defaults_to_the_contact_email(self) -> None:
        outcome = step(_graph(), "welcome", make_ctx(steps={"lookup": {"tier": "gold"}}))

        assert outcome == Perform(effect=SendMessage(
            channel="email", to="ada@example.com", subject="Welcome, Ada",
            body="Your tier: gold", on_failure="continue",
        ))

    def test_default_filters_fill_missing_values(self) -> None:
        contact = {k: v for k, v in CONTACT.items() if k != "first_name"}

        outcome = step(_graph(), "welcome", make_ctx(contact=contact))

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, SendMessage)
        assert (outcome.effect.subject, outcome.effect.body) == ("Welcome, there",
                                                                 "Your tier: standard")

    def test_to_template_is_rendered_and_trimmed(self) -> None:
        graph = _graph(to="  {{ event.manager_email }} ", on_failure="continue")

        outcome = step(graph, "welcome", make_ctx(event={"manager_email": "boss@example.com"}))

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, SendMessage)
        assert outcome.effect.to == "boss@example.com"
        assert outcome.effect.on_failure == "continue"

    def test_sms_defaults_to_the_contact_phone(self) -> None:
        graph = _graph(channel="sms", subject="ignored")

        outcome = step(graph, "welcome", make_ctx())

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, SendMessage)
        assert (outcome.effect.channel, outcome.effect.to) == ("sms", "+447700900123")

    def test_without_subject_the_subject_is_empty(self) -> None:
        graph = graph_of({"s": {"type": "SEND_MESSAGE", "channel": "sms", "body": "Hi",
                                "next": "d"}})

        outcome = step(graph, "s", make_ctx())

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, SendMessage)
        assert outcome.effect.subject == ""

    def test_contact_without_email_fails(self) -> None:
        contact = {**CONTACT, "email": None}

        outcome = step(_graph(), "welcome", make_ctx(contact=contact))

        assert outcome == Fail(reason="no email address to send the email to",
                               error_class="NoAddress", output={"reason": "no_address"})

    def test_contact_without_phone_fails_for_sms(self) -> None:
        contact = {k: v for k, v in CONTACT.items() if k != "phone"}

        outcome = step(_graph(channel="sms"), "welcome", make_ctx(contact=contact))

        assert outcome == Fail(reason="no phone address to send the sms to",
                               error_class="NoAddress", output={"reason": "no_address"})

    def test_event_run_without_contact_or_to_fails(self) -> None:
        outcome = step(_graph(), "welcome", make_ctx(contact=None))

        assert isinstance(outcome, Fail)
        assert "no email address" in outcome.reason

    def test_to_that_renders_empty_fails(self) -> None:
        outcome = step(_graph(to="{{ event.cc | default('') }}"), "welcome", make_ctx())

        assert isinstance(outcome, Fail)
        assert "no email address" in outcome.reason


class TestResume:
    def test_sent_advances_with_the_attempt(self) -> None:
        result = SendResult(attempt_id="att-1", status="SENT")

        outcome = resume(_graph(), "welcome", make_ctx(), result)

        assert outcome == Advance(next="wait_2d",
                                  output={"delivery_attempt_id": "att-1", "status": "SENT"})

    def test_by_default_a_failed_delivery_continues_the_run(self) -> None:
        result = SendResult(attempt_id="att-2", status="FAILED", error="550 mailbox unavailable")

        outcome = resume(_graph(), "welcome", make_ctx(), result)

        assert outcome == Advance(next="wait_2d", output={
            "delivery_attempt_id": "att-2", "status": "FAILED",
            "error": "550 mailbox unavailable"})

    def test_error_with_on_failure_fail_fails(self) -> None:
        result = SendResult(attempt_id="att-2", status="FAILED", error="550 mailbox unavailable")

        outcome = resume(_graph(on_failure="fail"), "welcome", make_ctx(), result)

        assert isinstance(outcome, Fail)
        assert "550 mailbox unavailable" in outcome.reason
        assert outcome.output == {"delivery_attempt_id": "att-2", "status": "FAILED",
                                  "error": "550 mailbox unavailable"}

    def test_error_with_explicit_on_failure_fail_fails(self) -> None:
        result = SendResult(attempt_id="att-2", status="FAILED", error="timeout")

        outcome = resume(_graph(on_failure="fail"), "welcome", make_ctx(), result)

        assert isinstance(outcome, Fail)

    def test_error_with_on_failure_continue_advances(self) -> None:
        result = SendResult(attempt_id="att-3", status="SUPPRESSED", error="unsubscribed")

        outcome = resume(_graph(on_failure="continue"), "welcome", make_ctx(), result)

        assert outcome == Advance(next="wait_2d", output={
            "delivery_attempt_id": "att-3", "status": "SUPPRESSED", "error": "unsubscribed"})
