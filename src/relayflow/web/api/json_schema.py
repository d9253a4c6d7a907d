"""GET /api/v1/schema/workflow.json: the JSON Schema of a workflow definition, for editors
(`# yaml-language-server: $schema=<this URL>` at the top of a workflow's YAML).

It needs no API key: it holds no data, and editors fetch it without one. Like
/api/openapi.json it describes the API rather than being an operation of it, so it is not
in the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from relayflow.engine import schema
from relayflow.web.deps import _refuse_nul

router = APIRouter(prefix="/schema", tags=["schema"])
MEDIA_TYPE = "application/schema+json"


@router.get("/workflow.json", name="schema:workflow", include_in_schema=False,
            dependencies=[Depends(_refuse_nul)])  # a NUL is refused on every route alike
def workflow_schema() -> Response:
    return Response(schema.schema_bytes(), media_type=MEDIA_TYPE)
