"""A template over a render cap fails its run through the real worker, and sends nothing."""

from __future__ import annotations

from sqlalchemy import select

from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, DeliveryAttempt
from tests.support.flows import attempts_of, install, run_of, start, steps_of
from tests.support.worker import drain

HEAVY_LOOP = ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
              "{% endfor %}")


def _flow(key: str, node: dict) -> dict:
    return {"key": key, "trigger": {"type": "manual"}, "start": "first",
            "nodes": {"first": node, "done": {"type": "END"}}}


class TestTemplateLimits:
    def test_send_message_over_the_size_cap_fails_the_run_and_sends_nothing(
            self, runtime, workspace):
        install(runtime, workspace.id, _flow("huge", {
            "type": "SEND_MESSAGE", "channel": "email", "subject": "Hi",
            "body": "{{ 'x' * 10**9 }}", "next": "done"}))
        [run_id] = start(runtime, workspace.id, "huge", email="big@example.com")

        drain(runtime)

        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert run.error == ("TemplateTooLarge: template value is larger than 64 KiB "
                             "(65536 characters) while rendering 'body'")
        failed = steps_of(runtime, run_id)[-1]
        assert (failed.node_id, failed.status, failed.error) == ("first", "FAILED", run.error)
        assert failed.delivery_attempt_id is None
        assert attempts_of(runtime, run_id) == []
        with session_scope(runtime.sessions) as session:
            assert session.scalars(select(DeliveryAttempt)).all() == []

    def test_update_contact_over_the_time_cap_fails_the_run_and_changes_nothing(
            self, runtime, workspace):
        install(runtime, workspace.id, _flow("slow", {
            "type": "UPDATE_CONTACT", "set": {"tier": HEAVY_LOOP}, "next": "done"}))
        [run_id] = start(runtime, workspace.id, "slow", email="slow@example.com",
                         attributes={"tier": "gold"})

        drain(runtime)

        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert run.error == ("TemplateTooSlow: template took longer than 100 ms "
                             "while rendering 'set.tier'")
        assert steps_of(runtime, run_id)[-1].status == "FAILED"
        with session_scope(runtime.sessions) as session:
            contact = session.scalar(select(Contact).where(Contact.email == "slow@example.com"))
            assert contact is not None
            assert contact.attributes["tier"] == "gold"
