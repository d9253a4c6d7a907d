"""Signed webhooks: a replay opens no second run, and a secret rotates without a gap.

The same signed request (same `t`, same body) is remembered for longer than its 5-minute
window, whatever unsigned headers come with it. During a rotation the secret `<NAME>` and
`<NAME>_PREVIOUS` are both accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient

from relayflow.services import secret as secret_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.support.concurrent import send_signed
from tests.support.flows import set_secret
from tests.web.hooks.conftest import (
    SECRET_NAME,
    SECRET_VALUE,
    hook_definition,
    install_hook,
    run_count,
    signature,
)

NOW = datetime(2025, 3, 30, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BODY = json.dumps({"kind": "order", "order": 42}).encode()
PREVIOUS = SECRET_NAME + "_PREVIOUS"
OLD_VALUE = "whsec-old-0a1b2c3d-being-retired"


@pytest.fixture
def signed_path(client: TestClient, runtime: Runtime, workspace) -> Iterator[str]:
    """A signed webhook workflow (no contact mapping), the server's clock stopped at NOW."""
    set_secret(runtime, workspace.id, SECRET_NAME, SECRET_VALUE)
    path = install_hook(client, hook_definition(signing_secret=SECRET_NAME))
    real_clock = runtime.clock
    runtime.clock = lambda: NOW
    yield path
    runtime.clock = real_clock


@pytest.fixture
def rotating(runtime: Runtime, workspace, signed_path: str) -> str:
    """The same webhook in the middle of a rotation: the old value kept as <NAME>_PREVIOUS."""
    set_secret(runtime, workspace.id, PREVIOUS, OLD_VALUE)
    return signed_path


def _headers(sig: str | None, **extra: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **extra}
    if sig is not None:
        headers["Relayflow-Signature"] = sig
    return headers


def _post(client: TestClient, path: str, body: bytes, sig: str | None, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(path, content=body, headers=_headers(sig, **extra))


def _one_byte_changed(sig: str) -> str:
    """The last hex digit of the v1 value changed: still well formed, one byte different."""
    last = sig[-1]
    return sig[:-1] + ("0" if last != "0" else "1")


def _duplicates_ignored(client: TestClient, run_id: str) -> int:
    return int(client.get(f"/api/v1/runs/{run_id}").json()["duplicates_ignored"])


class TestReplay:
    def test_the_same_signed_request_twice_opens_one_run_answered_like_a_duplicate(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        sig = signature(BODY, t=T)
        first = _post(client, signed_path, BODY, sig)

        again = _post(client, signed_path, BODY, sig)

        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json() == {**first.json(), "duplicate": True}
        assert run_count(runtime) == 1
        assert _duplicates_ignored(client, first.json()["id"]) == 1

    def test_a_replay_with_an_idempotency_key_added_opens_no_run(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        sig = signature(BODY, t=T)
        _post(client, signed_path, BODY, sig)

        again = _post(client, signed_path, BODY, sig, **{"Idempotency-Key": "fresh-1"})

        assert again.status_code == 409, again.text
        assert "already received" in again.json()["error"]["message"]
        assert run_count(runtime) == 1

    def test_a_replay_with_its_idempotency_key_changed_opens_no_run(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        sig = signature(BODY, t=T)
        first = _post(client, signed_path, BODY, sig, **{"Idempotency-Key": "order-42"})
        same = _post(client, signed_path, BODY, sig, **{"Idempotency-Key": "order-42"})

        changed = _post(client, signed_path, BODY, sig, **{"Idempotency-Key": "order-43"})
        removed = _post(client, signed_path, BODY, sig)

        assert same.json() == {**first.json(), "duplicate": True}
        assert (changed.status_code, removed.status_code) == (409, 409)
        assert run_count(runtime) == 1

    def test_a_sender_retry_signed_anew_with_the_same_key_is_a_duplicate(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        first = _post(client, signed_path, BODY, signature(BODY, t=T - 20),
                      **{"Idempotency-Key": "order-42"})

        retry = _post(client, signed_path, BODY, signature(BODY, t=T),
                      **{"Idempotency-Key": "order-42"})

        assert retry.json() == {**first.json(), "duplicate": True}
        assert run_count(runtime) == 1

    def test_the_same_body_signed_at_another_second_is_a_new_request(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        a = _post(client, signed_path, BODY, signature(BODY, t=T - 1)).json()
        b = _post(client, signed_path, BODY, signature(BODY, t=T)).json()

        assert a["id"] != b["id"]
        assert run_count(runtime) == 2

    def test_a_refused_request_is_not_remembered(
        self, client: TestClient, runtime: Runtime, signed_path: str, workspace
    ) -> None:
        client.post("/api/v1/workflows/inbound/deactivate")
        sig = signature(BODY, t=T)
        assert _post(client, signed_path, BODY, sig).status_code == 409
        client.post("/api/v1/workflows/inbound/activate")

        answer = _post(client, signed_path, BODY, sig)

        assert answer.status_code == 202
        assert answer.json()["duplicate"] is False
        assert run_count(runtime) == 1

    def test_unsigned_webhooks_remember_nothing(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition("plain"))

        _post(client, path, BODY, None)
        _post(client, path, BODY, None)

        assert run_count(runtime) == 2


class TestRotation:
    def test_both_secrets_are_accepted_while_previous_exists(
        self, client: TestClient, runtime: Runtime, rotating: str
    ) -> None:
        old = _post(client, rotating, BODY, signature(BODY, t=T - 1, secret=OLD_VALUE))
        new = _post(client, rotating, BODY, signature(BODY, t=T))
        other = _post(client, rotating, BODY, signature(BODY, t=T - 2, secret="a-third"))

        assert (old.status_code, new.status_code, other.status_code) == (202, 202, 401)
        assert run_count(runtime) == 2

    def test_the_same_request_under_the_other_secret_is_still_a_replay(
        self, client: TestClient, runtime: Runtime, rotating: str
    ) -> None:
        first = _post(client, rotating, BODY, signature(BODY, t=T, secret=OLD_VALUE))

        again = _post(client, rotating, BODY, signature(BODY, t=T))

        assert again.json() == {**first.json(), "duplicate": True}
        assert run_count(runtime) == 1

    def test_once_previous_is_deleted_the_old_secret_is_refused(
        self, client: TestClient, runtime: Runtime, rotating: str, workspace
    ) -> None:
        with session_scope(runtime.sessions) as session:
            secret_service.delete(session, workspace_id=workspace.id, name=PREVIOUS, now=NOW)

        old = _post(client, rotating, BODY, signature(BODY, t=T, secret=OLD_VALUE))

        assert old.status_code == 401
        assert run_count(runtime) == 0

    def test_previous_alone_does_not_sign(
        self, client: TestClient, runtime: Runtime, rotating: str, workspace
    ) -> None:
        with session_scope(runtime.sessions) as session:
            secret_service.delete(session, workspace_id=workspace.id, name=SECRET_NAME, now=NOW)

        old = _post(client, rotating, BODY, signature(BODY, t=T, secret=OLD_VALUE))

        assert old.status_code == 401
        assert "signing secret" in old.json()["error"]["message"]


class TestOneByte:
    def test_one_byte_of_the_signature_changed_is_401(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        response = _post(client, signed_path, BODY, _one_byte_changed(signature(BODY, t=T)))

        assert response.status_code == 401
        assert "does not match" in response.json()["error"]["message"]
        assert run_count(runtime) == 0


N = 50  # distinct signed requests, each sent twice


class TestSignatureFigures:
    def test_fifty_signed_requests_each_sent_twice_open_fifty_runs_and_forgeries_none(
        self, client: TestClient, runtime: Runtime, rotating: str, live_url: str
    ) -> None:
        """Half signed with the previous secret, half with the current one (a rotation);
        pairs 0-24 sent twice at the same moment, pairs 25-49 one after the other."""
        url = f"{live_url}{rotating}"
        signed = []
        for i in range(N):
            body = json.dumps({"kind": "order", "order": i}).encode()
            secret = OLD_VALUE if i % 2 else SECRET_VALUE
            signed.append((body, signature(body, t=T - i, secret=secret)))
        racing = [pair for pair in signed[: N // 2] for _ in range(2)]

        with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=N)) as http:
            answers = send_signed(http, url, racing, together=True)
            for pair in signed[N // 2:]:
                answers += send_signed(http, url, [pair, pair], together=False)

        assert sorted({a.status_code for a in answers}) == [202], [a.text for a in answers[:3]]
        bodies = [a.json() for a in answers]
        firsts = [b for b in bodies if not b["duplicate"]]
        duplicates = len(bodies) - len(firsts)
        by_id: dict[str, int] = {}
        for body in bodies:
            by_id[body["id"]] = by_id.get(body["id"], 0) + 1
        runs = run_count(runtime)
        ignored = sum(_duplicates_ignored(client, run_id) for run_id in by_id)

        body, sig = signed[0]
        other = json.dumps({"kind": "order", "order": "never-sent"}).encode()
        stale = {offset: _post(client, rotating, other, signature(other, t=T + offset)).status_code
                 for offset in (-301, 301)}
        old_stale = {offset: _post(client, rotating, other, signature(
            other, t=T + offset, secret=OLD_VALUE)).status_code for offset in (-301, 301)}
        one_byte_body = _post(client, rotating, body.replace(b'"order": 0', b'"order": 1'),
                              sig).status_code
        one_byte_v1 = _post(client, rotating, other,
                            _one_byte_changed(signature(other, t=T))).status_code
        runs_after = run_count(runtime)
        print(f"\nsigned webhooks: {N} distinct x 2 sends ({N // 2} pairs concurrent, "  # noqa: T201
              f"{N // 2} in sequence, half under each secret of a rotation) -> {runs} runs, "
              f"{duplicates} answered duplicate, duplicates_ignored {ignored}; "
              f"401 for t±301 s: {stale} (previous secret: {old_stale}), "
              f"one-byte body change: {one_byte_body}, one-byte signature change: "
              f"{one_byte_v1}; runs after the forgeries: {runs_after}")

        assert runs == N
        assert len(firsts) == N
        assert duplicates == N
        assert sorted(by_id.values()) == [2] * N
        assert ignored == N
        assert stale == old_stale == {-301: 401, 301: 401}
        assert (one_byte_body, one_byte_v1) == (401, 401)
        assert runs_after == N
