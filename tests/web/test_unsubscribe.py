"""Unsubscribe links: in the message, one-click, once, and refused when tampered with."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact
from tests.services.test_delivery import _email_flow
from tests.support.flows import attempts_of, install, start
from tests.support.worker import drain


def _send(runtime, workspace, email: str) -> str:
    flow = _email_flow(body="Hi! Unsubscribe: {{ unsubscribe_url }}")
    install(runtime, workspace.id, flow)
    [run_id] = start(runtime, workspace.id, "mail", email=email,
                     attributes={"first_name": "A", "plan": "pro"})
    drain(runtime)
    return str(run_id)


class TestUnsubscribeLink:
    def test_the_message_carries_the_link_and_rfc8058_headers(self, runtime, workspace, smtp_sink):
        _send(runtime, workspace, "ann@example.com")
        [received] = smtp_sink.messages
        header = received["List-Unsubscribe"]
        assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        link = header.strip("<>")
        assert "/u/" in link
        assert link in received.get_body(preferencelist=("plain",)).get_content()

    def test_one_click_works_once_then_sends_are_suppressed(self, runtime, workspace, smtp_sink,
                                                            anonymous_client):
        _send(runtime, workspace, "ann@example.com")
        path = "/u/" + smtp_sink.messages[0]["List-Unsubscribe"].strip("<>").split("/u/", 1)[1]
        page = anonymous_client.get(path)
        assert page.status_code == 200
        assert "<form method=\"post\">" in page.text
        first = anonymous_client.post(path, content=b"List-Unsubscribe=One-Click",
                                      headers={"Content-Type":
                                               "application/x-www-form-urlencoded"})
        assert first.status_code == 200
        assert "unsubscribed" in first.text
        again = anonymous_client.post(path)
        assert again.status_code == 409
        run_id = _send(runtime, workspace, "ann@example.com")
        [attempt] = attempts_of(runtime, uuid.UUID(run_id))
        assert (attempt.status, attempt.suppressed_by) == ("SUPPRESSED", "unsubscribed")
        assert len(smtp_sink.messages) == 1

    @pytest.mark.parametrize("mutate", [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: ("x" + t.split(".")[0][1:]) + "." + t.split(".")[1],  # payload changed
        lambda t: t.split(".")[0],  # signature removed
        lambda t: "garbage",
    ])
    def test_a_tampered_link_is_refused(self, runtime, workspace, smtp_sink, anonymous_client,
                                        mutate):
        _send(runtime, workspace, "bo@example.com")
        token = smtp_sink.messages[0]["List-Unsubscribe"].strip("<>").split("/u/", 1)[1]
        response = anonymous_client.post(f"/u/{mutate(token)}")
        assert response.status_code == 422
        assert "not valid" in response.text
        with session_scope(runtime.sessions) as session:
            contact = session.scalar(select(Contact).where(Contact.email == "bo@example.com"))
            assert contact is not None
            assert contact.suppressed == {}
