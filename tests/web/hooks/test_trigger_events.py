"""A webhook request that opens no run of its own leaves a trigger event with its reason
code, written where it was refused (or found a duplicate), against the contact it named
when that contact is known; what it carried is not kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.config import Settings
from relayflow.errors import Unauthorized
from relayflow.services import retention
from relayflow.services import webhook as webhook_service
from relayflow.services.runtime import Runtime
from relayflow.services.webhook import Accepted, Inbound
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, TriggerEvent, WorkflowRun
from relayflow.storage.repositories import run as run_repo
from tests.support.flows import set_secret
from tests.web.api.definitions import create
from tests.web.hooks.conftest import (
    SECRET_NAME,
    SECRET_VALUE,
    hook_definition,
    install_hook,
    signature,
)

NOW = datetime(2030, 1, 1, 12, 0, 15, tzinfo=UTC)
T = int(NOW.timestamp())
LIMIT = 3
BODY = json.dumps({"kind": "order", "email": "ada@example.com",
                   "note": "card 4242-canary"}).encode()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_webhook_per_minute": LIMIT})


@pytest.fixture
def signed_path(client: TestClient, runtime: Runtime, workspace) -> Iterator[str]:
    """A signed webhook workflow, the clock stopped, and Ada known (her first request)."""
    set_secret(runtime, workspace.id, SECRET_NAME, SECRET_VALUE)
    path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"},
                                                signing_secret=SECRET_NAME))
    real_clock = runtime.clock
    runtime.clock = lambda: NOW
    assert _post(client, path, BODY, signature(BODY, t=T)).status_code == 202
    yield path
    runtime.clock = real_clock


def _post(client: TestClient, path: str, body: bytes, sig: str | None = None,
          key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["Relayflow-Signature"] = sig
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, content=body, headers=headers)


def _events(runtime: Runtime) -> list[tuple[str, str | None, str | None]]:
    """(code, cause, the contact's email) of every trigger event, oldest first."""
    with session_scope(runtime.sessions) as session:
        rows = session.execute(
            select(TriggerEvent.code, TriggerEvent.cause, Contact.email)
            .outerjoin(Contact, Contact.id == TriggerEvent.contact_id)
            .order_by(TriggerEvent.id)).all()
    return [tuple(row) for row in rows]


class TestRefusedRequests:
    def test_a_wrong_signature(self, client, runtime, signed_path) -> None:
        response = _post(client, signed_path, BODY, signature(BODY, t=T, secret="wrong"))
        assert response.status_code == 401
        assert _events(runtime) == [("trigger_rejected", "signature", "ada@example.com")]

    def test_a_missing_signature(self, client, runtime, signed_path) -> None:
        assert _post(client, signed_path, BODY).status_code == 401
        assert _events(runtime) == [("trigger_rejected", "signature", "ada@example.com")]

    def test_a_malformed_signature(self, client, runtime, signed_path) -> None:
        assert _post(client, signed_path, BODY, "v1=nothing-else").status_code == 401
        assert _events(runtime) == [("trigger_rejected", "signature", "ada@example.com")]

    def test_a_stale_signature(self, client, runtime, signed_path) -> None:
        assert _post(client, signed_path, BODY, signature(BODY, t=T - 3600)).status_code == 401
        assert _events(runtime) == [("trigger_rejected", "signature", "ada@example.com")]

    def test_a_replay_under_another_key(self, client, runtime, signed_path) -> None:
        response = _post(client, signed_path, BODY, signature(BODY, t=T), key="other")
        assert response.status_code == 409, response.text
        assert _events(runtime) == [("trigger_rejected", "replay", "ada@example.com")]

    def test_the_rate_limit(self, client, runtime, signed_path) -> None:
        for n in range(LIMIT):  # the fixture's request was the first of the minute
            body = json.dumps({"kind": "order", "email": "ada@example.com", "n": n}).encode()
            answer = _post(client, signed_path, body, signature(body, t=T))
            assert answer.status_code == (202 if n < LIMIT - 1 else 429), answer.text
        assert _events(runtime) == [("trigger_rejected", "rate_limit", "ada@example.com")]

    def test_an_invalid_payload_names_no_contact(self, client, runtime, signed_path) -> None:
        body = b'["not", "an", "object"]'
        assert _post(client, signed_path, body, signature(body, t=T)).status_code == 422
        assert _events(runtime) == [("trigger_rejected", "invalid_payload", None)]

    def test_a_contact_not_known_here_is_not_created(self, client, runtime,
                                                     signed_path) -> None:
        body = BODY.replace(b"ada@", b"bob@")
        assert _post(client, signed_path, body).status_code == 401
        assert _events(runtime) == [("trigger_rejected", "signature", None)]
        with session_scope(runtime.sessions) as session:
            assert session.scalars(select(Contact.email)).all() == ["ada@example.com"]

    def test_a_workflow_not_active(self, client, runtime, signed_path) -> None:
        assert client.post("/api/v1/workflows/inbound/deactivate").status_code == 200
        assert _post(client, signed_path, BODY, signature(BODY, t=T + 1)).status_code == 409
        assert _events(runtime) == [("workflow_inactive", None, "ada@example.com")]

    def test_an_unknown_address_records_nothing(self, client, runtime, signed_path) -> None:
        assert _post(client, "/hooks/" + "x" * 32, BODY).status_code == 404
        assert _events(runtime) == []

    def test_what_the_request_carried_is_not_kept(self, client, runtime, signed_path) -> None:
        assert _post(client, signed_path, BODY).status_code == 401
        with session_scope(runtime.sessions) as session:
            [row] = session.execute(select(TriggerEvent.__table__)).mappings().all()
        assert "canary" not in repr(dict(row))
        assert row["source"] == "webhook"


class TestDuplicates:
    def test_a_repeated_idempotency_key_names_the_run_it_repeated(
            self, client, runtime, signed_path) -> None:
        body = json.dumps({"kind": "order", "email": "ada@example.com", "n": 1}).encode()
        first = _post(client, signed_path, body, signature(body, t=T), key="order-1")
        again = _post(client, signed_path, body, signature(body, t=T + 1), key="order-1")
        assert first.status_code == again.status_code == 202
        assert again.json()["duplicate"] is True
        assert _events(runtime) == [("duplicate_trigger", None, "ada@example.com")]
        with session_scope(runtime.sessions) as session:
            run_id = session.scalar(select(TriggerEvent.run_id))
            assert session.get(WorkflowRun, run_id) is not None
        assert str(run_id) == first.json()["id"] == again.json()["id"]

    def test_a_duplicate_in_a_batch_written_request_by_request(
            self, client, runtime, signed_path) -> None:
        """A batch with a refused request is written again one request at a time
        (services/webhook.receive_many): its duplicate is recorded there too."""
        body = json.dumps({"kind": "order", "email": "ada@example.com", "n": 2}).encode()
        assert _post(client, signed_path, body, signature(body, t=T), key="k").status_code == 202
        token = signed_path.rsplit("/", 1)[1]
        answers = webhook_service.receive_many(
            runtime.sessions,
            [Inbound(token=token, body=body, signature=signature(body, t=T + 2),
                     idempotency_key="k"),
             Inbound(token=token, body=body, signature=None)],
            cipher=runtime.cipher, clock=lambda: NOW, per_minute=0)
        assert isinstance(answers[0], Accepted)
        assert answers[0].enrolled.duplicate
        assert isinstance(answers[1], Unauthorized)
        assert sorted(_events(runtime), key=str) == [
            ("duplicate_trigger", None, "ada@example.com"),
            ("trigger_rejected", "signature", "ada@example.com")]

    def test_a_signed_request_sent_again(self, client, runtime, signed_path) -> None:
        """The same signed request (no key: its signature makes one) answers with its run."""
        body = json.dumps({"kind": "order", "email": "ada@example.com", "n": 3}).encode()
        sig = signature(body, t=T)
        first = _post(client, signed_path, body, sig)
        again = _post(client, signed_path, body, sig)
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json()["duplicate"] is True
        assert _events(runtime) == [("duplicate_trigger", None, "ada@example.com")]

    def test_a_manual_trigger_under_a_key_it_used_before(self, client, runtime,
                                                         signed_path) -> None:
        create(client, _manual())
        body = {"contact": {"email": "ada@example.com"}, "idempotency_key": "signup-7"}
        first = client.post("/api/v1/workflows/by-hand/runs", json=body)
        again = client.post("/api/v1/workflows/by-hand/runs", json=body)
        assert (first.status_code, again.status_code) == (202, 202), again.text
        assert again.json() == {**first.json(), "duplicate": True}
        with session_scope(runtime.sessions) as session:
            event = session.scalars(select(TriggerEvent)).one()
        assert (event.code, event.source, str(event.run_id)) == (
            "duplicate_trigger", "manual", first.json()["id"])

    def test_a_key_taken_by_another_transaction_meanwhile(self, client, runtime, workspace,
                                                          monkeypatch) -> None:
        """Two triggers under one key at once: the second's lookup misses the first's run,
        its insert then fails on the key, and it answers with the first run. The race is
        made certain by hiding the first run from the lookup that comes before the insert."""
        create(client, _manual())
        body = {"contact": {"email": "ada@example.com"}, "idempotency_key": "signup-8"}
        first = client.post("/api/v1/workflows/by-hand/runs", json=body)
        real = run_repo.find_by_idempotency_key
        lookups: list[str] = []

        def late(session, workflow_id, key):  # type: ignore[no-untyped-def]
            lookups.append(key)
            return None if len(lookups) == 1 else real(session, workflow_id, key)

        monkeypatch.setattr(run_repo, "find_by_idempotency_key", late)
        again = client.post("/api/v1/workflows/by-hand/runs", json=body)
        assert again.status_code == 202, again.text
        assert again.json() == {**first.json(), "duplicate": True}
        assert lookups == ["signup-8", "signup-8"]
        assert _events(runtime) == [("duplicate_trigger", None, "ada@example.com")]


class TestRetention:
    def test_prune_lets_trigger_events_go_with_the_runs_of_their_time(
            self, client, runtime, signed_path) -> None:
        assert _post(client, signed_path, BODY).status_code == 401
        runtime.clock = lambda: NOW + timedelta(days=95)
        assert _post(client, signed_path, BODY).status_code == 401
        assert len(_events(runtime)) == 2
        runtime.clock = lambda: NOW + timedelta(days=100)
        retention.prune(runtime, older_than="90d", dry_run=True)
        assert len(_events(runtime)) == 2
        retention.prune(runtime, older_than="90d")
        with session_scope(runtime.sessions) as session:
            assert session.scalars(select(TriggerEvent.at)).all() == [
                NOW + timedelta(days=95)]


def _manual() -> dict:
    return {"key": "by-hand", "trigger": {"type": "manual"}, "start": "done",
            "nodes": {"done": {"type": "END"}}}
