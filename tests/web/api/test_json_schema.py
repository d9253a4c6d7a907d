"""GET /api/v1/schema/workflow.json: the workflow definition's JSON Schema, for editors."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "src/relayflow/engine/workflow.schema.json"
URL = "/api/v1/schema/workflow.json"


class TestWorkflowSchema:
    def test_is_the_schema_file_and_needs_no_key(self, anonymous_client: TestClient) -> None:
        response = anonymous_client.get(URL)

        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/schema+json"
        assert response.content == SCHEMA_FILE.read_bytes()
        assert response.json()["$schema"] == "https://json-schema.org/draft/2020-12/schema"

