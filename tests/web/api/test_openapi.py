"""The OpenAPI document, and schemathesis against it: no request, valid or not, gets a 5xx.

The fuzz run is bounded (a fixed number of examples per operation) so it takes well under a
minute; it runs in every test run, so CI runs it on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import pytest
import schemathesis
import schemathesis.engine
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis import Config
from schemathesis.engine import Status, events

from relayflow.config import Settings
from relayflow.services.runtime import Runtime
from tests.web.api.history import seed
from tests.web.api.routes import api_routes

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

EXAMPLES_PER_OPERATION = 25
# NUL (PostgreSQL refuses it in text), over-long text (VARCHAR limits), LIKE wildcards,
# non-ASCII and a date past year 9999. Schemathesis sends what fits each parameter (it drops
# NUL and over-long values from paths); test_text.py puts NUL in every route's path itself.
TRICKY = ["a\x00b", "x" * 400, "%_%", "ключ-🔑", "9999-12-31T23:59:59-23:59"]
# Routes under /api/v1 that describe the API rather than act on a workspace, and so are not
# in the document, like /api/openapi.json itself: the workflow definition's JSON Schema
# (no key; tests/web/api/test_json_schema.py).
UNDOCUMENTED = {("GET", "/api/v1/schema/workflow.json")}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Schemathesis sends well over a thousand requests through one key within a minute.
    return settings.model_copy(update={"rate_limit_api_per_minute": 1_000_000})


@pytest.fixture
def spec(anonymous_client: TestClient) -> dict[str, Any]:
    response = anonymous_client.get("/api/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        if path.startswith("/api/v1/"):
            for method, operation in item.items():
                yield method.upper(), path, operation


class TestOpenApiDocument:
    def test_is_a_valid_openapi_document(self, spec: dict[str, Any]) -> None:
        schemathesis.openapi.from_dict(spec).validate()  # raises on an invalid document

    def test_the_validity_check_catches_a_broken_document(self, spec: dict[str, Any]) -> None:
        broken = copy.deepcopy(spec)
        broken["paths"]["/api/v1/runs"]["get"]["responses"]["200"] = {"content": "nope"}

        with pytest.raises(jsonschema_rs.ValidationError):
            schemathesis.openapi.from_dict(broken).validate()

    def test_documents_every_api_route(self, app: FastAPI, spec: dict[str, Any]) -> None:
        documented = {(m, p) for m, p, _ in _operations(spec)}

        assert documented == api_routes(app) - UNDOCUMENTED
        assert api_routes(app) >= UNDOCUMENTED

    def test_every_operation_has_a_summary(self, spec: dict[str, Any]) -> None:
        missing = [f"{m} {p}" for m, p, op in _operations(spec) if not op.get("summary")]

        assert missing == []

    def test_every_success_has_a_response_model(self, spec: dict[str, Any]) -> None:
        for method, path, operation in _operations(spec):
            for status, response in operation["responses"].items():
                if status.startswith("2") and status != "204":
                    schema = response["content"]["application/json"]["schema"]
                    assert "$ref" in schema, (method, path, status, schema)

    def test_every_error_uses_the_shared_error_body(self, spec: dict[str, Any]) -> None:
        for method, path, operation in _operations(spec):
            statuses = operation["responses"]
            assert "401" in statuses, (method, path)  # every /api/v1 route needs a key
            for status, response in statuses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (
                        method, path, status)

    def test_routes_with_an_id_in_the_path_document_404(self, spec: dict[str, Any]) -> None:
        for method, path, operation in _operations(spec):
            if "{" in path and (method, path) != ("PUT", "/api/v1/secrets/{name}"):  # upsert
                assert "404" in operation["responses"], (method, path)

    def test_routes_with_parameters_or_a_body_document_422(self, spec: dict[str, Any]) -> None:
        for method, path, operation in _operations(spec):
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in operation["responses"], (method, path)

    def test_writes_document_403(self, spec: dict[str, Any]) -> None:
        for method, path, operation in _operations(spec):
            if method != "GET":
                assert "403" in operation["responses"], (method, path)


# --- schemathesis ---------------------------------------------------------------------
# Driven through schemathesis's engine (what its CLI runs: the examples, coverage and fuzzing
# phases) inside one ordinary test; its pytest plugin does not work with pytest 9.


@dataclass
class FuzzResult:
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    server_errors: list[str] = field(default_factory=list)
    check_failures: list[str] = field(default_factory=list)
    engine_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _config(headers: dict[str, str], dictionaries: dict[str, list[str]]) -> Config:
    bindings = {
        "path.run_id": "run_ids", "path.key": "workflow_keys", "path.contact_id": "contact_ids",
        "path.name": "secret_names", "path.prefix": "key_prefixes", "path.email": "members",
        "query.workflow": "workflow_keys", "query.contact": "addresses",
        "query.status": "statuses",
    }
    return Config.from_dict({
        "seed": 20240601,
        "headers": headers,
        # Positive and negative data; no example database, so every run is the same run.
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "mode": "all",
                       "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
        "dictionaries": {name: {"values": values} for name, values in dictionaries.items()},
        "parameters": {key: {"dictionary": name, "probability": 0.5}
                       for key, name in bindings.items()},
    })


def _fuzz(app: FastAPI, config: Config) -> FuzzResult:
    result = FuzzResult()
    started = time.monotonic()
    api = schemathesis.openapi.from_asgi("/api/openapi.json", app, config=config).include(
        path_regex="^/api/v1/")
    for event in schemathesis.engine.from_schema(api).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                result.requests += 1
                result.operations.add(recorder.label)
                response = interaction.response
                if response is not None and response.status_code >= 500:
                    request = interaction.request
                    result.server_errors.append(
                        f"{response.status_code} {request.method} {request.uri} "
                        f"{(request.body or b'')[:200]!r}")
            for checks in recorder.checks.values():
                result.check_failures += [f"{recorder.label}: {c.name} {c.failure_info}"
                                          for c in checks if c.status == Status.FAILURE]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            result.engine_errors.append(str(getattr(event, "info", event)))
    result.seconds = time.monotonic() - started
    return result


class TestSchemathesis:
    def test_no_request_gets_a_server_error(
        self, app: FastAPI, client: TestClient, other_client: TestClient, runtime: Runtime,
        workspace: WorkspaceHandle, spec: dict[str, Any],
    ) -> None:
        history = seed(client, other_client, runtime)  # a workspace with real objects
        client.put("/api/v1/secrets/CRM_TOKEN", json={"value": "secret-value"})
        spare_keys = [client.post("/api/v1/keys", json={"role": "viewer"}).json()["prefix"]
                      for _ in range(3)]
        contacts = [c["id"] for c in client.get("/api/v1/contacts").json()["items"]]
        members = [client.post("/api/v1/members", json={
            "email": f"m{i}@example.com", "role": role, "password": "long enough"}).json()["email"]
            for i, role in enumerate(("admin", "operator", "viewer"))]
        # Real ids and keys, which schemathesis mixes into what it generates so that it
        # reaches past the 404s (never the key it calls with: revoking that would end the
        # run), and text that databases choke on, which random generation rarely hits
        # (first: the earlier entries of a dictionary are drawn more often).
        dictionaries = {
            "run_ids": [*TRICKY, *history.ids.values(), history.other_run],
            "workflow_keys": [*TRICKY, "onboarding", "rejecter", "hold"],
            "contact_ids": [*TRICKY, *contacts],
            "addresses": [*TRICKY, "a\x00@example.com", "ada@example.com", "+14155550123",
                          "Bob@Example.com", *contacts],
            "secret_names": [*TRICKY, "CRM_TOKEN", "OTHER"],
            "key_prefixes": [*TRICKY, *spare_keys],
            "members": [*TRICKY, *members, "M0@Example.com", "a/b@example.com"],
            "statuses": [*TRICKY, "PENDING", "RUNNING,FAILED", "completed", "CANCELED"],
        }

        result = _fuzz(app, _config(workspace.headers, dictionaries))

        # An unhandled exception reaches schemathesis (the ASGI test client re-raises it)
        # as an engine error, with a curl command to reproduce it; a 5xx answer is a
        # server error; both fail the test.
        documented = {f"{method} {path}" for method, path, _ in _operations(spec)}
        print(f"\nschemathesis: {result.requests} requests over "  # noqa: T201
              f"{len(result.operations & documented)} of {len(documented)} /api/v1 operations "
              f"in {result.seconds:.1f}s, {len(result.server_errors)} 5xx answers, "
              f"{len(result.engine_errors)} unhandled errors")
        assert result.engine_errors == []
        assert result.server_errors == []
        assert result.check_failures == []
        assert sorted(documented - result.operations) == []  # every operation was exercised
        assert result.requests >= 20 * len(documented)  # it really ran
