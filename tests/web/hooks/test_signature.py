"""POST /hooks/{token} on a workflow with a signing secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from relayflow.services import secret as secret_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
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
BODY = json.dumps({"kind": "order", "email": "ada@example.com"}).encode()


@pytest.fixture
def signed_path(client: TestClient, runtime: Runtime, workspace) -> Iterator[str]:
    """A signed webhook workflow, with the server's clock stopped at NOW."""
    set_secret(runtime, workspace.id, SECRET_NAME, SECRET_VALUE)
    path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"},
                                                signing_secret=SECRET_NAME))
    real_clock = runtime.clock
    runtime.clock = lambda: NOW
    yield path
    runtime.clock = real_clock


def _post(client: TestClient, path: str, body: bytes, sig: str | None):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["Relayflow-Signature"] = sig
    return client.post(path, content=body, headers=headers)


def _assert_refused(response, runtime: Runtime, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "Unauthorized"
    assert reason in error["message"]
    assert run_count(runtime) == 0


class TestReceiveSignedWebhook:
    def test_valid_signature_is_accepted(self, client: TestClient, signed_path: str) -> None:
        response = _post(client, signed_path, BODY, signature(BODY, t=T))

        assert response.status_code == 202

    def test_wrong_signature_is_401_and_opens_no_run(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        response = _post(client, signed_path, BODY, signature(BODY, t=T, secret="guess"))

        _assert_refused(response, runtime, "does not match")

    def test_missing_signature_is_401_and_opens_no_run(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        response = _post(client, signed_path, BODY, None)

        _assert_refused(response, runtime, "missing")

    @pytest.mark.parametrize("header", [
        "garbage",
        f"t={T}",
        "v1=" + "a" * 64,
        f"t=yesterday,v1={'a' * 64}",
        f"t={T},v1=not-hex",
        f"t={T},t={T},v1={'a' * 64}",
    ])
    def test_malformed_signature_is_401_and_opens_no_run(
        self, client: TestClient, runtime: Runtime, signed_path: str, header: str
    ) -> None:
        response = _post(client, signed_path, BODY, header)

        _assert_refused(response, runtime, "malformed")

    @pytest.mark.parametrize("offset", [-301, 301])
    def test_signature_outside_five_minutes_is_401_and_opens_no_run(
        self, client: TestClient, runtime: Runtime, signed_path: str, offset: int
    ) -> None:
        response = _post(client, signed_path, BODY, signature(BODY, t=T + offset))

        _assert_refused(response, runtime, "outside the 5-minute window")

    @pytest.mark.parametrize("offset", [-300, 300])
    def test_signature_exactly_five_minutes_off_is_accepted(
        self, client: TestClient, signed_path: str, offset: int
    ) -> None:
        response = _post(client, signed_path, BODY, signature(BODY, t=T + offset))

        assert response.status_code == 202

    def test_body_changed_by_one_byte_is_401_and_opens_no_run(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        tampered = BODY.replace(b"ada@", b"adb@")
        assert len(tampered) == len(BODY)

        response = _post(client, signed_path, tampered, signature(BODY, t=T))

        _assert_refused(response, runtime, "does not match")

    def test_a_second_v1_entry_with_the_new_secret_is_accepted(
        self, client: TestClient, signed_path: str
    ) -> None:
        old = signature(BODY, t=T, secret="the-previous-secret").split(",v1=")[1]
        new = signature(BODY, t=T).split(",v1=")[1]

        response = _post(client, signed_path, BODY, f"t={T},v1={old},v1={new}")

        assert response.status_code == 202

    def test_signature_is_checked_before_the_body_is_parsed(
        self, client: TestClient, runtime: Runtime, signed_path: str
    ) -> None:
        response = _post(client, signed_path, b"{not json", None)

        _assert_refused(response, runtime, "missing")

    def test_deleted_signing_secret_refuses_every_request_and_warns(
        self, client: TestClient, runtime: Runtime, signed_path: str, workspace,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        with session_scope(runtime.sessions) as session:
            secret_service.delete(session, workspace_id=workspace.id, name=SECRET_NAME,
                                  now=NOW)

        with caplog.at_level(logging.WARNING, logger="relayflow"):
            response = _post(client, signed_path, BODY, signature(BODY, t=T))

        _assert_refused(response, runtime, "signing secret")
        assert any(SECRET_NAME in r.getMessage() and r.levelno == logging.WARNING
                   for r in caplog.records)

    def test_the_secret_value_is_never_answered_or_logged(
        self, client: TestClient, runtime: Runtime, signed_path: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        with caplog.at_level(logging.DEBUG):
            answers = [
                _post(client, signed_path, BODY, signature(BODY, t=T)),
                _post(client, signed_path, BODY, signature(BODY, t=T, secret="x")),
                _post(client, signed_path, BODY, "garbage"),
                _post(client, signed_path, BODY, signature(BODY, t=T - 999)),
                client.get("/api/v1/workflows/inbound"),
            ]

        assert [a.status_code for a in answers] == [202, 401, 401, 401, 200]
        for answer in answers:
            assert SECRET_VALUE not in answer.text
        assert SECRET_VALUE not in caplog.text
