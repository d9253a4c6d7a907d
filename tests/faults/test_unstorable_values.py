"""A value no database column can hold must not stall the runs claimed beside it.

Intake refuses NUL characters and unpaired surrogates (PostgreSQL cannot store NUL in text
or JSON, and no UTF-8 encoding exists for a lone surrogate), but a run makes new values as
it walks: templates, captured answers, error texts. One such value used to fail the
transaction that writes the whole claimed batch, on every claim, so the runs claimed with
it never moved again. Now what cannot be stored is written as U+FFFD, and a run whose
progress still cannot be written is set aside alone: the rest of its batch goes on.
"""

from __future__ import annotations

from typing import Any

import pytest

from relayflow.services import walk
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact
from tests.support.flows import attempts_of, install, run_of, start, steps_of

REPLACEMENT = "\ufffd"
# Jinja string literals read backslash escapes as Python does: "\u0000" is a NUL.
NUL = "{{ 'a\\u0000b' }}"
SURROGATE = "{{ 'a\\ud800b' }}"


def _flow(key: str, first: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "trigger": {"type": "manual"}, "start": "first",
            "nodes": {"first": {**first, "next": "done"} if "next" not in first else first,
                      "done": {"type": "END"}}}


GOOD = {"key": "good", "trigger": {"type": "manual"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}


def _batch(runtime, workspace, bad_key: str) -> tuple[list, list]:
    """Three good runs around one bad run, all claimed in one batch."""
    install(runtime, workspace.id, GOOD)
    good = start(runtime, workspace.id, "good", email="g@example.com", count=2)
    [bad] = start(runtime, workspace.id, bad_key, email="bad@example.com")
    good += start(runtime, workspace.id, "good", email="h@example.com")
    walk.advance(runtime, worker="w", limit=64, lease_seconds=30)
    return good, [bad]


class TestUnstorableValues:
    @pytest.mark.parametrize("template", [NUL, SURROGATE], ids=["nul", "surrogate"])
    def test_contact_attribute(self, runtime, workspace, template):
        install(runtime, workspace.id, _flow("bad", {"type": "UPDATE_CONTACT",
                                                     "set": {"note": template}}))
        good, [bad] = _batch(runtime, workspace, "bad")

        assert [run_of(runtime, r).status for r in good] == ["COMPLETED"] * 3
        assert run_of(runtime, bad).status == "COMPLETED"
        with session_scope(runtime.sessions) as session:
            contact = session.get(Contact, run_of(runtime, bad).contact_id)
            assert contact is not None
            assert contact.attributes["note"] == f"a{REPLACEMENT}b"

    @pytest.mark.parametrize("template", [NUL, SURROGATE], ids=["nul", "surrogate"])
    def test_stop_error_message(self, runtime, workspace, template):
        install(runtime, workspace.id, {
            "key": "bad", "trigger": {"type": "manual"}, "start": "stop",
            "nodes": {"stop": {"type": "STOP_ERROR", "message": template}}})
        good, [bad] = _batch(runtime, workspace, "bad")

        assert [run_of(runtime, r).status for r in good] == ["COMPLETED"] * 3
        run = run_of(runtime, bad)
        assert (run.status, run.error) == ("FAILED", f"a{REPLACEMENT}b")

    def test_integration_answer(self, runtime, workspace, http_server):
        install(runtime, workspace.id, _flow("bad", {
            "type": "INTEGRATION", "capture": {"echoed": "body.body"},
            "request": {"method": "POST", "url": f"{http_server.url}/echo", "body": NUL}}))
        good, [bad] = _batch(runtime, workspace, "bad")
        walk.advance(runtime, worker="w", limit=64, lease_seconds=30)  # after the call

        assert [run_of(runtime, r).status for r in good] == ["COMPLETED"] * 3
        run = run_of(runtime, bad)
        assert run.status == "COMPLETED", run.error
        call = steps_of(runtime, bad)[1]
        assert REPLACEMENT in call.output["echoed"]
        assert "\x00" not in call.output["echoed"]


class TestOverlongValues:
    def test_recipient_longer_than_an_address_may_be(self, runtime, workspace):
        install(runtime, workspace.id, _flow("bad", {
            "type": "SEND_MESSAGE", "channel": "email", "to": "{{ event.to }}",
            "subject": "Hi", "body": "Hello"}))
        install(runtime, workspace.id, GOOD)
        good = start(runtime, workspace.id, "good", email="g@example.com", count=2)
        [bad] = start(runtime, workspace.id, "bad", email="bad@example.com",
                      event={"to": "a" * 400 + "@example.com"})
        walk.advance(runtime, worker="w", limit=64, lease_seconds=30)
        walk.advance(runtime, worker="w", limit=64, lease_seconds=30)

        assert [run_of(runtime, r).status for r in good] == ["COMPLETED"] * 2
        assert run_of(runtime, bad).status == "COMPLETED"  # a failed message goes on
        [attempt] = attempts_of(runtime, bad)
        assert attempt.status == "FAILED"
        assert "to is longer than an email address may be" in (attempt.error or "")
        assert len(attempt.recipient) == 320  # what the column holds of it
