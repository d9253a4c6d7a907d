"""Contact addresses hold only visible characters: no bidi override, no zero-width
character, no control character, no emoji in an e-mail address. Such addresses make
look-alike contacts ("ada@example.com" and "ada\u200b@example.com" print the same).
Refused with 422 naming the field; nothing is written."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from relayflow.errors import InvalidInput
from relayflow.services import contact as contact_service

REFUSED = {
    "bidi override": "\u202e",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "control character": "\x07",
    "escape": "\x1b",
    "NUL": "\x00",
}


def _contact_count(client: TestClient) -> int:
    return len(client.get("/api/v1/contacts").json()["items"])


class TestUpsertRefusesHiddenCharacters:
    @pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
    def test_in_an_email(self, client: TestClient, char: str) -> None:
        response = client.post("/api/v1/contacts", json={"email": f"ada{char}@example.com"})

        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "InvalidInput"
        assert "email" in error["message"]
        assert _contact_count(client) == 0

    @pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
    def test_in_a_phone(self, client: TestClient, char: str) -> None:
        response = client.post("/api/v1/contacts", json={"phone": f"+1 415{char}555 0123"})

        assert response.status_code == 422, response.text
        assert "phone" in response.json()["error"]["message"]
        assert _contact_count(client) == 0

    @pytest.mark.parametrize("email", ["ada\U0001f600@example.com", "ada@exa\u2764mple.com"])
    def test_emoji_in_an_email(self, client: TestClient, email: str) -> None:
        response = client.post("/api/v1/contacts", json={"email": email})

        assert response.status_code == 422, response.text
        assert "email" in response.json()["error"]["message"]

    def test_the_message_names_the_character(self, client: TestClient) -> None:
        response = client.post("/api/v1/contacts", json={"email": "ada\u202e@example.com"})

        assert "U+202E" in response.json()["error"]["message"]


class TestNormalisation:
    def test_a_decomposed_address_finds_the_composed_one(self, client: TestClient) -> None:
        composed = client.post("/api/v1/contacts", json={"email": "Zo\u00eb@Example.COM"})
        decomposed = client.post("/api/v1/contacts", json={"email": "zoe\u0308@example.com"})

        assert composed.status_code == 201, composed.text
        assert decomposed.status_code == 200, decomposed.text
        assert decomposed.json()["id"] == composed.json()["id"]
        assert composed.json()["email"] == "zo\u00eb@example.com"

    def test_international_letters_are_kept(self) -> None:
        assert contact_service.normalize_email("J\u00fcrgen@B\u00fccher.DE") == \
            "j\u00fcrgen@b\u00fccher.de"

    def test_surrounding_whitespace_is_still_trimmed(self) -> None:
        assert contact_service.normalize_email("  ada@example.com\n") == "ada@example.com"
        assert contact_service.normalize_phone(" +1 415 555 0123\t") == "+14155550123"

    @pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
    def test_lookup_by_address_refuses_them_too(self, char: str) -> None:
        with pytest.raises(InvalidInput, match="email"):
            contact_service.normalize_email(f"ada{char}@example.com")
