"""A webhook whose contact mapping yields an address with hidden characters is refused with
422 (the sender keeps its event and learns why); no run and no contact are written."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from relayflow.services.runtime import Runtime
from tests.web.hooks.conftest import contacts, hook_definition, install_hook, run_count

REFUSED = {
    "bidi override": "\u202e",
    "zero-width space": "\u200b",
    "control character": "\x07",
    "NUL": "\x00",
}


class TestWebhookContactAddresses:
    @pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
    def test_email_is_refused_with_422_and_nothing_written(
        self, client: TestClient, runtime: Runtime, char: str
    ) -> None:
        path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"}))

        response = client.post(path, json={"kind": "order", "email": f"ada{char}@example.com"})

        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "InvalidInput"
        assert run_count(runtime) == 0
        assert contacts(runtime) == []

    @pytest.mark.parametrize("char", ["\u202e", "\u200b", "\x07"])
    def test_the_message_names_the_field(
        self, client: TestClient, runtime: Runtime, char: str
    ) -> None:
        path = install_hook(client, hook_definition(contact={"phone": "{{ event.tel }}"}))

        response = client.post(path, json={"kind": "order", "tel": f"+1 415{char}555 0123"})

        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert "contact mapping" in message
        assert "phone" in message
        assert run_count(runtime) == 0

    def test_a_clean_address_still_opens_its_run(
        self, client: TestClient, runtime: Runtime
    ) -> None:
        path = install_hook(client, hook_definition(contact={"email": "{{ event.email }}"}))

        response = client.post(path, json={"kind": "order", "email": "Zoe\u0308@Example.com"})

        assert response.status_code == 202, response.text
        assert [c.email for c in contacts(runtime)] == ["zo\u00eb@example.com"]
