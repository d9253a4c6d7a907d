"""Text PostgreSQL cannot hold (NUL characters) is refused with 422 on every route and on
both databases, before any query sees it; so is JSON that is not plain JSON."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.web.api.definitions import create, straight
from tests.web.api.routes import api_routes


class TestNulCharacters:
    def test_in_any_path_parameter_is_422(self, app: FastAPI, client: TestClient) -> None:
        create(client, straight())
        routes = sorted(r for r in api_routes(app) if "{" in r[1])
        assert routes

        for method, template in routes:
            path = re.sub(r"\{[^}]+\}", "a%00b", template)
            response = client.request(method, path, json={})
            assert response.status_code == 422, (method, path, response.text)
            assert response.json()["error"]["code"] == "InvalidInput"

    def test_in_any_query_parameter_is_422(self, app: FastAPI, client: TestClient) -> None:
        for _method, path in sorted(r for r in api_routes(app) if r[0] == "GET"):
            response = client.get(path.replace("{", "").replace("}", ""),
                                  params={"anything": "a\x00b"})
            assert response.status_code == 422, (path, response.text)

    @pytest.mark.parametrize("params", [
        {"workflow": "a\x00b"}, {"contact": "a\x00@example.com"}, {"status": "\x00"},
        {"cursor": "\x00"},
    ])
    def test_in_run_filters_is_422(self, client: TestClient, params: dict[str, str]) -> None:
        response = client.get("/api/v1/runs", params=params)

        assert response.status_code == 422
        assert "NUL" in response.json()["error"]["message"]

    @pytest.mark.parametrize(("path", "body"), [
        ("/api/v1/contacts", {"email": "a\x00@example.com"}),
        ("/api/v1/contacts", {"external_id": "a\x00"}),
        ("/api/v1/contacts", {"email": "a@example.com", "attributes": {"k\x00": 1}}),
        ("/api/v1/contacts", {"email": "a@example.com", "attributes": {"k": ["\x00"]}}),
        ("/api/v1/workflows/onboarding/runs", {"event": {"note": "a\x00b"}}),
        ("/api/v1/workflows/onboarding/runs", {"contact": {"email": "a\x00@example.com"}}),
        ("/api/v1/workflows/onboarding/runs", {"idempotency_key": "k\x00"}),
        ("/api/v1/keys", {"role": "viewer", "name": "\x00"}),
        ("/api/v1/members", {"email": "m@example.com", "role": "viewer",
                             "password": "long enough\x00"}),
    ])
    def test_in_a_json_body_is_422(
        self, client: TestClient, path: str, body: dict[str, Any]
    ) -> None:
        create(client, straight())

        response = client.post(path, json=body)

        assert response.status_code == 422, response.text
        assert client.get("/api/v1/runs").json()["items"] == []

    def test_in_a_workflow_definition_is_422(self, client: TestClient) -> None:
        definition = straight()
        definition["name"] = "On\x00boarding"

        response = client.post("/api/v1/workflows", json=definition)

        assert response.status_code == 422
        assert client.get("/api/v1/workflows").json() == {"items": []}


class TestPlainJson:
    @pytest.mark.parametrize("raw", ['{"event": {"x": NaN}}', '{"event": {"x": Infinity}}'])
    def test_nan_and_infinity_in_an_event_are_422(self, client: TestClient, raw: str) -> None:
        create(client, straight())

        response = client.post("/api/v1/workflows/onboarding/runs", content=raw,
                               headers={"Content-Type": "application/json"})

        assert response.status_code == 422, response.text

    def test_yaml_dates_in_a_definition_are_kept_as_iso_text(self, client: TestClient) -> None:
        # YAML reads a bare date as a date object, which JSON cannot store.
        definition = ("key: dated\ntrigger: {type: manual}\nstart: done\n"
                      "description: 2024-06-01\nnodes:\n  done: {type: END}\n")

        response = client.post("/api/v1/workflows", content=definition,
                               headers={"Content-Type": "application/yaml"})

        assert response.status_code == 201, response.text
        stored = client.get("/api/v1/workflows/dated").json()["definition"]
        assert stored["description"] == "2024-06-01"
