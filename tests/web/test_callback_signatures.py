"""Signed provider callbacks: replays change nothing, forgeries are 401, secrets rotate.

The same signed callback (same `t`, same body) received twice records its events once; a
one-byte change or a timestamp 301 s off is refused; while `<events_secret>_PREVIOUS`
exists, callbacks signed with either value are accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from fastapi.testclient import TestClient

from relayflow.services import secret as secret_service
from relayflow.services.runtime import Runtime
from relayflow.services.signed import signature_header
from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt
from tests.services.test_delivery import _email_flow
from tests.support import smtpserver
from tests.support.concurrent import send_signed
from tests.support.flows import attempts_of, install, set_provider, set_secret, start
from tests.support.worker import drain

EVENTS_SECRET = "evsec-5e7a-current-canary"
OLD_SECRET = "evsec-0c9d-previous-canary"
N = 20  # attempts, one distinct callback each, each sent twice


class Sent:
    """N SENT email attempts and the server's clock, stopped on a whole second."""

    def __init__(self, runtime: Runtime, workspace, attempts: list[DeliveryAttempt],
                 now: datetime) -> None:
        self.runtime, self.workspace, self.attempts, self.now = runtime, workspace, attempts, now
        self.t = int(now.timestamp())

    def path(self) -> str:
        return f"/providers/{self.workspace.slug}/email/events"

    def signed(self, event: dict, *, secret: str = EVENTS_SECRET,
               offset: int = 0) -> tuple[bytes, str]:
        body = json.dumps(event).encode()
        return body, signature_header(secret, body, timestamp=self.t + offset)

    def attempt(self, attempt_id) -> DeliveryAttempt:  # type: ignore[no-untyped-def]
        with session_scope(self.runtime.sessions) as session:
            found = session.get(DeliveryAttempt, attempt_id)
            assert found is not None
            return found

    def events(self, attempt_id) -> list[str]:  # type: ignore[no-untyped-def]
        return [e["type"] for e in (self.attempt(attempt_id).provider_response or {})
                .get("events", [])]


def _sent(runtime: Runtime, workspace, count: int) -> Iterator[Sent]:
    server = smtpserver.start()
    set_secret(runtime, workspace.id, "EVENTS", EVENTS_SECRET)
    set_secret(runtime, workspace.id, "EVENTS_PREVIOUS", OLD_SECRET)  # a rotation under way
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": server.port, "tls": "none",
        "from": "ops@relay.test", "events_secret": "EVENTS"})
    install(runtime, workspace.id, _email_flow())
    run_ids = start(runtime, workspace.id, "mail", email="ann@example.com",
                    attributes={"first_name": "Ann", "plan": "pro"}, count=count)
    drain(runtime)
    attempts = [attempt for run_id in run_ids for attempt in attempts_of(runtime, run_id)]
    assert [a.status for a in attempts] == ["SENT"] * count
    real_clock = runtime.clock
    now = real_clock().replace(microsecond=0)
    runtime.clock = lambda: now
    yield Sent(runtime, workspace, attempts, now)
    runtime.clock = real_clock
    server.close()


@pytest.fixture
def sent(runtime: Runtime, workspace) -> Iterator[Sent]:
    """Three SENT email attempts through a real SMTP server, callbacks signed."""
    yield from _sent(runtime, workspace, 3)


@pytest.fixture
def sent_many(runtime: Runtime, workspace) -> Iterator[Sent]:
    yield from _sent(runtime, workspace, N)


def _post(client: TestClient, sent: Sent, body: bytes, sig: str):  # type: ignore[no-untyped-def]
    return client.post(sent.path(), content=body,
                       headers={"Relayflow-Signature": sig, "Content-Type": "application/json"})


def _one_byte_changed(sig: str) -> str:
    return sig[:-1] + ("0" if sig[-1] != "0" else "1")


class TestCallbackReplay:
    def test_the_same_signed_callback_twice_records_one_event(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        attempt = sent.attempts[0]
        body, sig = sent.signed({"type": "delivered", "message_id": attempt.provider_message_id})

        first = _post(anonymous_client, sent, body, sig)
        again = _post(anonymous_client, sent, body, sig)

        assert (first.status_code, again.status_code) == (200, 200)
        assert first.json()["duplicate"] is False
        assert again.json() == {**first.json(), "duplicate": True}
        assert sent.events(attempt.id) == ["delivered"]
        assert sent.attempt(attempt.id).status == "DELIVERED"

    def test_a_replayed_batch_records_each_event_once_and_answers_the_same(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        attempt = sent.attempts[0]
        body, sig = sent.signed({"events": [
            {"type": "delivered", "attempt_id": str(attempt.id)},
            {"type": "complained", "attempt_id": str(attempt.id)}]})

        first = _post(anonymous_client, sent, body, sig).json()
        again = _post(anonymous_client, sent, body, sig).json()

        assert again == {**first, "duplicate": True}
        assert [a["suppressed"] for a in again["applied"]] == [None, "complained"]
        assert sent.events(attempt.id) == ["delivered", "complained"]

    def test_the_same_event_signed_at_another_second_is_a_new_callback(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        attempt = sent.attempts[0]
        event = {"type": "delivered", "attempt_id": str(attempt.id)}

        a = _post(anonymous_client, sent, *sent.signed(event, offset=-1)).json()
        b = _post(anonymous_client, sent, *sent.signed(event)).json()

        assert (a["duplicate"], b["duplicate"]) == (False, False)
        assert sent.events(attempt.id) == ["delivered", "delivered"]

    def test_a_refused_callback_is_not_remembered(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        """Refused (404: a message id not known yet), then the same callback once it is."""
        attempt = sent.attempts[0]
        body, sig = sent.signed({"type": "delivered", "message_id": "late-id"})
        assert _post(anonymous_client, sent, body, sig).status_code == 404
        with session_scope(sent.runtime.sessions) as session:
            found = session.get(DeliveryAttempt, attempt.id)
            assert found is not None
            found.provider_message_id = "late-id"

        again = _post(anonymous_client, sent, body, sig)

        assert again.status_code == 200
        assert again.json()["duplicate"] is False
        assert sent.events(attempt.id) == ["delivered"]


class TestCallbackRotation:
    def test_both_secrets_are_accepted_a_third_is_not(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        a, b, c = sent.attempts[:3]
        old = _post(anonymous_client, sent, *sent.signed(
            {"type": "delivered", "attempt_id": str(a.id)}, secret=OLD_SECRET))
        new = _post(anonymous_client, sent, *sent.signed(
            {"type": "delivered", "attempt_id": str(b.id)}))
        other = _post(anonymous_client, sent, *sent.signed(
            {"type": "delivered", "attempt_id": str(c.id)}, secret="a-third"))

        assert (old.status_code, new.status_code, other.status_code) == (200, 200, 401)
        assert [sent.attempt(x.id).status for x in (a, b, c)] == ["DELIVERED", "DELIVERED",
                                                                  "SENT"]

    def test_a_sender_signing_with_both_secrets_is_accepted(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        body, old = sent.signed({"type": "delivered", "attempt_id": str(sent.attempts[0].id)},
                                secret="not-known-here")
        _, new = sent.signed(json.loads(body))

        response = _post(anonymous_client, sent, body, f"{old},v1={new.split('v1=')[1]}")

        assert response.status_code == 200

    def test_once_previous_is_deleted_the_old_secret_is_refused(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        with session_scope(sent.runtime.sessions) as session:
            secret_service.delete(session, workspace_id=sent.workspace.id,
                                  name="EVENTS_PREVIOUS", now=sent.now)

        response = _post(anonymous_client, sent, *sent.signed(
            {"type": "delivered", "attempt_id": str(sent.attempts[0].id)}, secret=OLD_SECRET))

        assert response.status_code == 401
        assert sent.attempt(sent.attempts[0].id).status == "SENT"


class TestCallbackOneByte:
    def test_one_byte_of_the_body_or_the_signature_changed_is_401(
        self, sent: Sent, anonymous_client: TestClient
    ) -> None:
        attempt = sent.attempts[0]
        body, sig = sent.signed({"type": "bounced", "attempt_id": str(attempt.id)})

        changed_body = _post(anonymous_client, sent, body.replace(b"bounced", b"bouncee"), sig)
        changed_sig = _post(anonymous_client, sent, body, _one_byte_changed(sig))

        assert (changed_body.status_code, changed_sig.status_code) == (401, 401)
        assert sent.attempt(attempt.id).status == "SENT"
        assert sent.events(attempt.id) == []


class TestCallbackSignatureFigures:
    def test_twenty_callbacks_each_sent_twice_record_twenty_events_and_forgeries_none(
        self, sent_many: Sent, anonymous_client: TestClient, live_url: str
    ) -> None:
        """Half signed with the previous secret (a rotation); pairs 0-9 sent twice at the
        same moment, pairs 10-19 one after the other."""
        sent = sent_many
        url = f"{live_url}{sent.path()}"
        signed = [sent.signed({"type": "delivered", "attempt_id": str(a.id)},
                              secret=OLD_SECRET if i % 2 else EVENTS_SECRET)
                  for i, a in enumerate(sent.attempts)]

        with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=N)) as http:
            answers = send_signed(http, url, [pair for pair in signed[: N // 2] for _ in range(2)],
                                together=True)
            for pair in signed[N // 2:]:
                answers += send_signed(http, url, [pair, pair], together=False)

        assert sorted({a.status_code for a in answers}) == [200], [a.text for a in answers[:3]]
        duplicates = sum(a.json()["duplicate"] for a in answers)
        recorded = {str(a.id): sent.events(a.id) for a in sent.attempts}
        statuses = {sent.attempt(a.id).status for a in sent.attempts}

        probe = sent.attempts[0]
        bounce = {"type": "bounced", "attempt_id": str(probe.id)}
        stale = {(offset, who): _post(anonymous_client, sent, *sent.signed(
            bounce, secret=secret, offset=offset)).status_code
            for offset in (-301, 301)
            for who, secret in (("current", EVENTS_SECRET), ("previous", OLD_SECRET))}
        body, sig = sent.signed(bounce)
        one_byte_body = _post(anonymous_client, sent, body.replace(b"bounced", b"bouncee"),
                              sig).status_code
        one_byte_sig = _post(anonymous_client, sent, body, _one_byte_changed(sig)).status_code
        events_recorded = sum(len(e) for e in recorded.values())
        print(f"\nsigned callbacks: {N} distinct x 2 sends ({N // 2} pairs concurrent, "  # noqa: T201
              f"{N // 2} in sequence, half under each secret of a rotation) -> "
              f"{events_recorded} events recorded, {duplicates} answered duplicate; "
              f"401 for t±301 s: {sorted(set(stale.values()))} over {len(stale)} tries, "
              f"one-byte body change: {one_byte_body}, one-byte signature change: "
              f"{one_byte_sig}; probe attempt after forgeries: {sent.attempt(probe.id).status}")

        assert duplicates == N
        assert recorded == {str(a.id): ["delivered"] for a in sent.attempts}
        assert statuses == {"DELIVERED"}
        assert set(stale.values()) == {401}
        assert (one_byte_body, one_byte_sig) == (401, 401)
        assert sent.attempt(probe.id).status == "DELIVERED"
        assert sent.events(probe.id) == ["delivered"]
