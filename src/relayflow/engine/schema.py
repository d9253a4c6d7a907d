"""The JSON Schema (draft 2020-12) of a workflow definition, for editors and API clients.

The schema is the file `workflow.schema.json` beside this module, written by hand;
tests/engine/test_workflow_schema.py holds it to what `validation.validate` accepts. It
says what JSON Schema can say (every field, its type, limits and default); the graph checks
(edges, reachability, cycles) and the syntax of templates, crons and time zones are the
validator's alone."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "workflow.schema.json"


@cache
def schema_bytes() -> bytes:
    """The schema document exactly as stored."""
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_bytes()


def workflow_schema() -> dict[str, Any]:
    """The schema as a fresh dict (callers may change their copy)."""
    schema: dict[str, Any] = json.loads(schema_bytes())
    return schema
