"""GET /api/v1/contacts/{id}/explain: a verdict and its reasons, each read from a record the
product wrote where it decided (the run, its steps, the attempt, a trigger event, a tick)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relayflow.services import schedule
from relayflow.services.runtime import Runtime
from tests.support.flows import suppress
from tests.support.worker import drain
from tests.web.api.definitions import create, straight, trigger, waiting
from tests.web.hooks.conftest import install_hook


def _mail_if_pro(key: str = "pro-mail") -> dict[str, Any]:
    """Mails only contacts on the pro plan."""
    return {"key": key, "trigger": {"type": "manual"}, "start": "check", "nodes": {
        "check": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                  "then": "mail", "else": "done"},
        "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi", "body": "Hi",
                 "next": "done"},
        "done": {"type": "END"}}}


def _contact_of(client: TestClient, run_id: str) -> str:
    return client.get(f"/api/v1/runs/{run_id}").json()["contact"]["id"]


def _explain(client: TestClient, contact_id: str, workflow: str, **params: str) -> dict:
    response = client.get(f"/api/v1/contacts/{contact_id}/explain",
                          params={"workflow": workflow, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _codes(found: dict) -> list[str]:
    return [reason["code"] for reason in found["reasons"]]


class TestVerdicts:
    def test_sent(self, client: TestClient, runtime: Runtime) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        drain(runtime)
        found = _explain(client, _contact_of(client, run_id), "onboarding")
        assert found["verdict"] == "sent"
        [sent] = [r for r in found["reasons"] if r["code"] == "sent"]
        assert sent["run_id"] == run_id
        assert sent["attempt_id"] is not None
        assert found["contact"]["email"] == "ada@example.com"
        assert found["workflow"] == "onboarding"

    def test_a_branch_that_left_the_message_out(self, client, runtime) -> None:
        create(client, _mail_if_pro())
        run_id = trigger(client, "pro-mail", contact={"email": "ada@example.com",
                                                      "attributes": {"plan": "free"}})
        drain(runtime)
        found = _explain(client, _contact_of(client, run_id), "pro-mail")
        assert found["verdict"] == "not_sent"
        [branch] = found["reasons"]
        assert (branch["code"], branch["node_id"], branch["run_id"]) == (
            "branch_not_taken", "check", run_id)
        assert branch["detail"]["branch"] == "else"
        assert branch["detail"]["result"] is False
        assert "free" in str(branch["detail"])  # the value the expression saw

    def test_suppressed(self, client, runtime) -> None:
        create(client, straight())
        first = trigger(client, "onboarding")
        drain(runtime)
        suppress(runtime, "ada@example.com", "email", "unsubscribed")
        again = trigger(client, "onboarding")
        drain(runtime)
        found = _explain(client, _contact_of(client, first), "onboarding")
        assert found["verdict"] == "sent"  # the first one was
        by_run = {r["run_id"]: r["code"] for r in found["reasons"]}
        assert by_run == {first: "sent", again: "suppressed_unsubscribed"}
        assert _codes(found)[0] == "suppressed_unsubscribed"  # newest first
        assert found["reasons"][0]["detail"]["suppressed_by"] == "unsubscribed"

    def test_no_address(self, client, runtime) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding", contact={"phone": "+14155550100"})
        drain(runtime)
        found = _explain(client, _contact_of(client, run_id), "onboarding")
        assert (found["verdict"], _codes(found)) == ("not_sent", ["no_address"])
        assert found["reasons"][0]["node_id"] == "welcome"

    def test_waiting_is_in_progress(self, client, runtime) -> None:
        create(client, waiting())
        run_id = trigger(client, "drip")
        drain(runtime)
        found = _explain(client, _contact_of(client, run_id), "drip")
        assert (found["verdict"], _codes(found)) == ("in_progress", ["waiting"])
        assert found["reasons"][0]["detail"]["until"] is not None

    def test_canceled(self, client, runtime) -> None:
        create(client, waiting())
        run_id = trigger(client, "drip")
        drain(runtime)
        response = client.post(f"/api/v1/runs/{run_id}/cancel", json={"reason": "asked"})
        assert response.status_code == 200, response.text
        found = _explain(client, _contact_of(client, run_id), "drip")
        assert (found["verdict"], _codes(found)) == ("not_sent", ["canceled"])
        assert found["reasons"][0]["detail"]["reason"] == "asked"

    def test_nothing_triggered_it(self, client, runtime) -> None:
        create(client, straight())
        create(client, waiting())
        run_id = trigger(client, "drip")
        found = _explain(client, _contact_of(client, run_id), "onboarding")
        assert (found["verdict"], _codes(found)) == ("not_enrolled", ["no_run"])

    def test_a_workflow_not_active_says_so(self, client, runtime) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        assert client.post("/api/v1/workflows/onboarding/deactivate").status_code == 200
        found = _explain(client, _contact_of(client, run_id), "onboarding")
        assert "workflow_inactive" in _codes(found)
        [inactive] = [r for r in found["reasons"] if r["code"] == "workflow_inactive"]
        assert inactive["detail"]["status"] != "ACTIVE"

    def test_a_refused_webhook(self, client, runtime) -> None:
        hook = install_hook(client, {"key": "inbound", "trigger": {
            "type": "webhook", "contact": {"email": "{{ event.email }}"},
            "signing_secret": "NOT_SET"}, "start": "done", "nodes": {"done": {"type": "END"}}})
        create(client, straight())
        run_id = trigger(client, "onboarding")  # Ada exists
        assert client.post(hook, json={"email": "ada@example.com"}).status_code == 401
        found = _explain(client, _contact_of(client, run_id), "inbound")
        assert found["verdict"] == "not_enrolled"
        assert _codes(found) == ["trigger_rejected", "no_run"]
        assert found["reasons"][0]["detail"]["cause"] == "signature"


class TestSchedule:
    def test_a_tick_that_left_the_contact_out(self, client, runtime, workspace) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding", contact={
            "email": "ada@example.com", "attributes": {"plan": "free"}})
        contact_id = _contact_of(client, run_id)
        create(client, {"key": "digest", "trigger": {
            "type": "schedule", "cron": "* * * * *", "audience": "contact.plan == 'pro'"},
            "start": "done", "nodes": {"done": {"type": "END"}}})
        # The first minute after the activation, and a moment later.
        tick = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        assert schedule.tick(runtime, now=tick + timedelta(seconds=30)) == 0
        runtime.clock = lambda: tick + timedelta(minutes=1)
        found = _explain(client, contact_id, "digest")
        assert found["verdict"] == "not_enrolled"
        [left_out] = [r for r in found["reasons"] if r["code"] == "not_in_audience"]
        assert left_out["detail"]["audience"] == "contact.plan == 'pro'"
        assert datetime.fromisoformat(left_out["at"]) == tick


class TestWouldItSendNow:
    def _now(self, found: dict) -> dict[tuple[str, str | None], tuple[bool, str]]:
        return {(c["check"], c["channel"]): (c["ok"], c["says"]) for c in found["now"]}

    def test_a_deliverable_contact(self, client, runtime) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        now = self._now(_explain(client, _contact_of(client, run_id), "onboarding"))
        assert {k: ok for k, (ok, _) in now.items()} == {
            ("workflow_active", None): True, ("address", "email"): True,
            ("suppression", "email"): True}

    def test_what_would_stop_it(self, client, runtime) -> None:
        noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        runtime.clock = lambda: noon  # one UTC day for the cap's count
        create(client, straight())
        assert client.put("/api/v1/settings/frequency-caps",
                          json={"email": 1}).status_code in (200, 201)
        run_id = trigger(client, "onboarding")  # takes today's one message
        drain(runtime)
        suppress(runtime, "ada@example.com", "email", "unsubscribed")
        assert client.post("/api/v1/workflows/onboarding/deactivate").status_code == 200
        now = self._now(_explain(client, _contact_of(client, run_id), "onboarding"))
        assert now[("workflow_active", None)][0] is False
        assert now[("suppression", "email")] == (
            False, "The contact's email is suppressed (unsubscribed): its messages are not sent.")
        assert now[("frequency_cap", "email")] == (
            False, "1 of 1 email messages a day sent to this contact today.")

    def test_no_address_and_an_audience_that_leaves_it_out(self, client, runtime) -> None:
        create(client, {"key": "digest", "trigger": {
            "type": "schedule", "cron": "0 9 * * *", "audience": "contact.plan == 'pro'"},
            "start": "mail", "nodes": {
                "mail": {"type": "SEND_MESSAGE", "channel": "sms", "body": "Hi",
                         "next": "done"},
                "done": {"type": "END"}}})
        create(client, straight())
        run_id = trigger(client, "onboarding", contact={"email": "ada@example.com",
                                                         "attributes": {"plan": "free"}})
        now = self._now(_explain(client, _contact_of(client, run_id), "digest"))
        assert now[("audience", None)] == (
            False, "The schedule's audience (contact.plan == 'pro') leaves this contact out.")
        assert now[("address", "sms")] == (
            False, "The contact has no phone: its sms messages cannot be sent.")


class TestBadInput:
    @pytest.mark.parametrize(("params", "status"), [
        ({}, 422), ({"workflow": "nope"}, 404), ({"workflow": "onboarding", "range": "1y"}, 422),
        ({"workflow": "onboarding", "range": "7d", "from": "2026-01-01T00:00:00Z"}, 422),
        ({"workflow": "onboarding", "from": "yesterday"}, 422)])
    def test_each_gets_a_clear_error(self, client, runtime, params, status) -> None:
        create(client, straight())
        run_id = trigger(client, "onboarding")
        contact_id = _contact_of(client, run_id)
        response = client.get(f"/api/v1/contacts/{contact_id}/explain", params=params)
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]

    @pytest.mark.parametrize("contact_id", ["nope", "0190c2d4-0000-7000-8000-000000000000"])
    def test_an_unknown_contact_is_404(self, client, runtime, contact_id) -> None:
        create(client, straight())
        response = client.get(f"/api/v1/contacts/{contact_id}/explain",
                              params={"workflow": "onboarding"})
        assert response.status_code == 404, response.text
