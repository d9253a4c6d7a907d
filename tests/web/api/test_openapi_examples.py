"""Every request body in the OpenAPI document carries an example; each example is valid for
its body's schema, and each is accepted by the route it documents, on a real database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from relayflow.config import Settings
from relayflow.engine import schema as workflow_schema
from relayflow.engine.graph import parse_definition
from relayflow.engine.validation import validate
from relayflow.services.runtime import Runtime
from relayflow.web.app import create_app
from tests.conftest import TEST_SECRET_KEY
from tests.support.flows import suppress
from tests.support.pages import add_member
from tests.support.worker import drain
from tests.web.api.definitions import create, straight, trigger, waiting

if TYPE_CHECKING:
    from tests.conftest import WorkspaceHandle

Body = tuple[str, str, str, dict[str, Any]]  # method, path, media type, media object


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The OpenAPI document of an app whose database is never opened."""
    folder = tmp_path_factory.mktemp("openapi")
    settings = Settings(database_url=f"sqlite:///{folder}/never-opened.db",
                        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                        secret_key_file=str(Path(folder) / "secret.key"))
    runtime = Runtime.from_settings(settings)
    yield create_app(settings, runtime=runtime).openapi()
    runtime.dispose()


def _bodies(document: dict[str, Any]) -> list[Body]:
    return [(method.upper(), path, media_type, media)
            for path, item in document["paths"].items()
            for method, operation in item.items()
            for media_type, media in operation.get("requestBody", {}).get("content", {}).items()]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _examples(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    """The media type's `example` and `examples`, and those of the schema it refers to
    (Pydantic puts a model's examples there; `Model | None` refers to it through anyOf)."""
    found = [media["example"]] if "example" in media else []
    found += [example["value"] for example in media.get("examples", {}).values()]
    schema = media["schema"]
    for part in [schema, *schema.get("anyOf", [])]:
        part = _resolve(document, part)
        found += part.get("examples", [])
        found += [part["example"]] if "example" in part else []
    return found


class TestExamplesInTheDocument:
    def test_every_request_body_has_an_example(self, document: dict[str, Any]) -> None:
        bodies = _bodies(document)

        missing = [f"{m} {p} {t}" for m, p, t, media in bodies if not _examples(document, media)]

        assert len(bodies) >= 15
        assert missing == []

    def test_every_example_is_valid_for_its_bodys_schema(self, document: dict[str, Any]) -> None:
        problems = []
        for method, path, media_type, media in _bodies(document):
            # OpenAPI 3.1 schemas are JSON Schema 2020-12; `components` rides along so that
            # the schema's references resolve inside the same document.
            checker = jsonschema_rs.Draft202012Validator(
                {**media["schema"], "components": document["components"]})
            for example in _examples(document, media):
                problems += [f"{method} {path} {media_type}: {error.message} in {example!r}"
                             for error in checker.iter_errors(example)]

        assert problems == []

    def test_the_workflow_examples_are_one_valid_definition(
        self, document: dict[str, Any]
    ) -> None:
        content = document["paths"]["/api/v1/workflows"]["post"]["requestBody"]["content"]
        [as_json] = _examples(document, content["application/json"])
        [as_yaml] = _examples(document, content["application/yaml"])
        checker = jsonschema_rs.Draft202012Validator(workflow_schema.workflow_schema())

        assert validate(as_json) == []
        assert checker.is_valid(as_json)
        assert parse_definition(as_yaml, content_type="application/yaml") == as_json


# --- sent to the routes ---------------------------------------------------------------

# Which object fills each path parameter, per route (the names of `objects` below).
PARAMS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/hooks/{token}"): {"token": "hook_token"},
    ("POST", "/api/v1/workflows/{key}/runs"): {"key": "workflow"},
    ("POST", "/api/v1/runs/{run_id}/cancel"): {"run_id": "pending_run"},
    ("POST", "/api/v1/runs/{run_id}/retry"): {"run_id": "finished_run"},
    ("POST", "/api/v1/contacts/{contact_id}/suppression/lift"): {
        "contact_id": "suppressed_contact"},
    ("POST", "/api/v1/contacts/{contact_id}/erase"): {"contact_id": "contact"},
    ("PUT", "/api/v1/secrets/{name}"): {"name": "secret"},
    ("PATCH", "/api/v1/members/{email}"): {"email": "member"},
    ("POST", "/api/v1/deliveries/{delivery_id}/resend"): {"delivery_id": "delivery"},
    ("PUT", "/api/v1/providers/{channel}"): {"channel": "channel"},
}


@pytest.fixture
def objects(client: TestClient, runtime: Runtime, workspace: WorkspaceHandle) -> dict[str, str]:
    """The objects the examples act on, and the secrets the provider examples name."""
    create(client, straight())
    create(client, waiting("nurture"))  # its run waits, RUNNING: the bulk cancel's example
    create(client, {"key": "orders", "trigger": {
        "type": "webhook", "contact": {"email": "{{ event.customer.email }}"}},
        "start": "done", "nodes": {"done": {"type": "END"}}})
    trigger(client, "onboarding")
    trigger(client, "nurture")
    drain(runtime)  # a finished run with a delivery attempt, and a waiting one
    delivery = client.get("/api/v1/deliveries").json()["items"][0]["id"]
    pending = trigger(client, "onboarding", contact={"email": "bo@example.com"})
    finished = trigger(client, "onboarding", contact={"email": "cy@example.com"})
    client.post(f"/api/v1/runs/{finished}/cancel")
    for name in ("SMTP_PASS", "SMS_TOKEN"):
        client.put(f"/api/v1/secrets/{name}", json={"value": "v"})
    lin = client.post("/api/v1/contacts", json={"email": "dee@example.com"}).json()["id"]
    suppress(runtime, "dee@example.com", "email", "unsubscribed")
    contact = client.post("/api/v1/contacts", json={"email": "eve@example.com"}).json()["id"]
    add_member(runtime, workspace.id, "sam@example.com", role="viewer")
    hook = client.get("/api/v1/workflows/orders").json()["webhook_url"]
    return {"workflow": "onboarding", "pending_run": pending, "finished_run": finished,
            "suppressed_contact": lin, "contact": contact, "secret": "CRM_TOKEN",
            "member": "sam@example.com", "delivery": delivery, "channel": "email",
            "hook_token": urlsplit(hook).path.rsplit("/", 1)[-1]}


class TestExamplesAreAccepted:
    def test_each_example_is_accepted_by_its_route(
        self, client: TestClient, objects: dict[str, str]
    ) -> None:
        document = client.get("/api/openapi.json").json()
        refused = []
        for method, template, media_type, media in _bodies(document):
            params = re.findall(r"{(\w+)}", template)
            assert not params or (method, template) in PARAMS, (
                f"add {method} {template} to PARAMS: which object goes in {params}?")
            path = template.format(**{p: objects[PARAMS[(method, template)][p]]
                                      for p in params})
            for example in _examples(document, media):
                if media_type == "application/json":
                    response = client.request(method, path, json=example)
                else:
                    response = client.request(method, path, content=example,
                                              headers={"Content-Type": media_type})
                if not 200 <= response.status_code < 300:
                    refused.append(f"{method} {path} {example!r}: {response.status_code} "
                                   f"{response.text}")

        assert refused == []
