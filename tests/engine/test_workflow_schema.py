"""The workflow definition's JSON Schema and docs/workflows.md, held to the validator.

Every field the validator's tables accept is in the schema and documented in its section;
every YAML example of the docs and every file of examples/ passes both the validator and
the schema; and definitions that differ from a valid one in a single field (left out, of
another type, added, of another node or trigger type) are valid for the schema exactly when
they are valid for the validator. No database."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from relayflow.engine import schema as workflow_schema
from relayflow.engine.executors.integration import IntegrationExecutor
from relayflow.engine.executors.send_message import ON_FAILURE_DEFAULT, SendMessageExecutor
from relayflow.engine.graph import NODE_TYPES, TRIGGER_TYPES, WorkflowGraph, parse_definition
from relayflow.engine.outcome import HttpCall, Perform, SendMessage
from relayflow.engine.validation import (
    BRANCH_FIELDS,
    CAPTURE_ROOTS,
    CHANNELS,
    COMMON,
    CONTACT_FIELDS,
    HTTP_METHODS,
    KEY_RE,
    NODE_ID_RE,
    ON_FAILURE,
    REQUEST_FIELDS,
    RESERVED_ATTRIBUTES,
    SPECS,
    TOP_LEVEL,
    TRIGGER_FIELDS,
    validate,
)
from relayflow.services import schedule as schedule_service
from tests.engine.builders import make_ctx

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "workflows.md"
EXAMPLE_FILES = sorted([*(ROOT / "examples").glob("*.yaml"),
                        *(ROOT / "src/relayflow/services/demo_workflows").glob("*.yaml")])
# A value of every JSON type, and numbers at the edges of the numeric fields' ranges.
ODD_VALUES: list[Any] = [None, True, 12345, -1, 0.5, "", [], {}]


def _doc_examples() -> dict[str, str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    return {str(parse_definition(block)["key"]): block for block in blocks}


DOC_EXAMPLES = _doc_examples()


def _sections() -> dict[str, str]:
    """Each heading's text (up to the next heading of any level), by heading."""
    parts = re.split(r"^(#{1,6} .+)$", DOCS.read_text(), flags=re.M)
    return {parts[i].lstrip("#").strip(): parts[i + 1] for i in range(1, len(parts), 2)}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return workflow_schema.workflow_schema()


@pytest.fixture(scope="module")
def checker(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    return jsonschema_rs.Draft202012Validator(schema)


def _node_schema(schema: dict[str, Any], node_type: str) -> dict[str, Any]:
    [rule] = [r for r in schema["$defs"]["node"]["allOf"]
              if r["if"]["properties"]["type"]["const"] == node_type]
    return _resolve(schema, rule["then"])


def _trigger_schema(schema: dict[str, Any], kind: str) -> dict[str, Any]:
    [rule] = [r for r in schema["$defs"]["trigger"]["allOf"]
              if r["if"]["properties"]["type"]["const"] == kind]
    return _resolve(schema, rule["then"])


def _resolve(schema: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in part:
        part = schema["$defs"][part["$ref"].removeprefix("#/$defs/")]
    return part


class TestSchemaDocument:
    def test_is_a_valid_draft_2020_12_schema(self, schema: dict[str, Any]) -> None:
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema_rs.meta.validate(schema)  # raises on an invalid schema

    def test_top_level_fields_are_the_validators(self, schema: dict[str, Any]) -> None:
        assert set(schema["properties"]) == TOP_LEVEL
        assert schema["additionalProperties"] is False

    def test_node_types_are_the_validators(self, schema: dict[str, Any]) -> None:
        node = schema["$defs"]["node"]
        dispatched = [r["if"]["properties"]["type"]["const"] for r in node["allOf"]]

        assert node["properties"]["type"]["enum"] == list(NODE_TYPES)
        assert sorted(dispatched) == sorted(SPECS) == sorted(NODE_TYPES)

    @pytest.mark.parametrize("node_type", NODE_TYPES)
    def test_each_node_type_has_the_validators_fields(
        self, schema: dict[str, Any], node_type: str
    ) -> None:
        spec = SPECS[node_type]
        node = _node_schema(schema, node_type)

        assert set(node["properties"]) == COMMON | spec.required | spec.optional
        assert set(node["required"]) == {"type"} | spec.required
        assert node["additionalProperties"] is False
        assert node["properties"]["type"] == {"const": node_type}

    @pytest.mark.parametrize("kind", TRIGGER_TYPES)
    def test_each_trigger_type_has_the_validators_fields(
        self, schema: dict[str, Any], kind: str
    ) -> None:
        trigger = _trigger_schema(schema, kind)

        assert schema["$defs"]["trigger"]["properties"]["type"]["enum"] == list(TRIGGER_TYPES)
        assert set(trigger["properties"]) == {"type"} | TRIGGER_FIELDS[kind]
        assert trigger["additionalProperties"] is False

    def test_nested_fields_and_words_are_the_validators(self, schema: dict[str, Any]) -> None:
        defs = schema["$defs"]
        send = _node_schema(schema, "SEND_MESSAGE")["properties"]
        integration = _node_schema(schema, "INTEGRATION")["properties"]
        contact = _trigger_schema(schema, "webhook")["properties"]["contact"]
        update = _node_schema(schema, "UPDATE_CONTACT")["properties"]["set"]

        assert set(defs["branch"]["properties"]) == BRANCH_FIELDS
        assert set(defs["request"]["properties"]) == REQUEST_FIELDS
        assert set(contact["properties"]) == CONTACT_FIELDS
        assert tuple(send["channel"]["enum"]) == CHANNELS
        assert tuple(send["on_failure"]["enum"]) == ON_FAILURE
        assert set(defs["request"]["properties"]["method"]["anyOf"][0]["enum"]) == HTTP_METHODS
        assert set(update["propertyNames"]["not"]["enum"]) == RESERVED_ATTRIBUTES
        assert defs["nodeId"]["pattern"] == NODE_ID_RE.pattern
        assert defs["workflowKey"]["pattern"] == KEY_RE.pattern
        capture = integration["capture"]["additionalProperties"]["pattern"]
        assert re.findall(r"\w+", capture.split(")")[0]) == ["status", "headers", "body"]
        assert tuple(re.findall(r"\w+", capture.split(")")[0])) == CAPTURE_ROOTS


class TestDefaults:
    """The schema's `default`s are what the engine does when a field is left out."""

    def test_integration(self, schema: dict[str, Any]) -> None:
        node = _node_schema(schema, "INTEGRATION")["properties"]
        request = schema["$defs"]["request"]["properties"]
        graph = WorkflowGraph.from_dict({"key": "t", "start": "call", "nodes": {"call": {
            "type": "INTEGRATION", "request": {"url": "https://api.example.com/"},
            "next": "done"}, "done": {"type": "END"}}})

        outcome = IntegrationExecutor().run(graph.nodes["call"], make_ctx())

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, HttpCall)
        assert outcome.effect.timeout == node["timeout"]["default"]
        assert outcome.effect.retries == node["retries"]["default"]
        assert outcome.effect.method == request["method"]["default"]
        assert outcome.effect.headers == request["headers"]["default"]

    def test_send_message(self, schema: dict[str, Any]) -> None:
        node = _node_schema(schema, "SEND_MESSAGE")["properties"]
        graph = WorkflowGraph.from_dict({"key": "t", "start": "send", "nodes": {"send": {
            "type": "SEND_MESSAGE", "channel": "email", "body": "Hi", "next": "done"},
            "done": {"type": "END"}}})

        outcome = SendMessageExecutor().run(graph.nodes["send"], make_ctx())

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, SendMessage)
        assert outcome.effect.on_failure == node["on_failure"]["default"] == ON_FAILURE_DEFAULT
        assert outcome.effect.subject == node["subject"]["default"]

    def test_trigger_and_timezone(self, schema: dict[str, Any]) -> None:
        graph = WorkflowGraph.from_dict({"key": "t", "start": "done",
                                         "nodes": {"done": {"type": "END"}}})
        timezone = _trigger_schema(schema, "schedule")["properties"]["timezone"]

        assert dict(graph.trigger) == schema["properties"]["trigger"]["default"]
        assert schedule_service.zone_of({"type": "schedule"}).key == timezone["default"]

    def test_every_default_is_said_in_the_description_too(self, schema: dict[str, Any]) -> None:
        found = list(_defaults(schema))

        assert len(found) >= 8
        for where, part in found:
            assert "Default:" in part.get("description", ""), where


def _defaults(part: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(part, dict):
        if "default" in part:
            yield where, part
        for key, value in part.items():
            yield from _defaults(value, f"{where}/{key}")
    elif isinstance(part, list):
        for i, value in enumerate(part):
            yield from _defaults(value, f"{where}/{i}")


class TestDocs:
    def test_every_field_has_a_row_in_its_sections_table(self) -> None:
        sections = _sections()
        expected: dict[str, set[str]] = {
            "The document": set(TOP_LEVEL),
            "Nodes": set(COMMON),
            "`SPLIT`": set(BRANCH_FIELDS),
            "`INTEGRATION`": set(REQUEST_FIELDS),
        }
        for node_type, spec in SPECS.items():
            expected.setdefault(f"`{node_type}`", set()).update(spec.required | spec.optional)
        for kind, fields in TRIGGER_FIELDS.items():
            expected.setdefault(f"`{kind}`", set()).update(fields)
        assert set(expected) <= set(sections), "a node or trigger type has no section"

        missing = {heading: sorted(f for f in fields
                                   if not re.search(rf"^\| `{f}` \|", sections[heading], re.M))
                   for heading, fields in expected.items()}

        assert {h: m for h, m in missing.items() if m} == {}

    def test_every_word_a_field_takes_is_documented_in_its_section(self) -> None:
        sections = _sections()
        expected: dict[str, set[str]] = {
            "Triggers": set(TRIGGER_TYPES),
            "`INTEGRATION`": set(CAPTURE_ROOTS) | set(HTTP_METHODS),
            "`SEND_MESSAGE`": set(CHANNELS) | set(ON_FAILURE),
            "`UPDATE_CONTACT`": set(RESERVED_ATTRIBUTES),
            "`webhook`": set(CONTACT_FIELDS),
        }

        missing = {heading: sorted(w for w in words if f"`{w}`" not in sections[heading])
                   for heading, words in expected.items()}

        assert {h: m for h, m in missing.items() if m} == {}

    def test_every_default_of_the_schema_is_in_its_table_row(
        self, schema: dict[str, Any]
    ) -> None:
        sections = _sections()
        rows = {("`INTEGRATION`", "timeout"), ("`INTEGRATION`", "retries"),
                ("`INTEGRATION`", "method"), ("`SEND_MESSAGE`", "on_failure"),
                ("`schedule`", "timezone")}
        defaults = {where.rsplit("/", 1)[-1]: part["default"] for where, part in _defaults(schema)}

        for heading, field in sorted(rows):
            [row] = [line for line in sections[heading].splitlines()
                     if line.startswith(f"| `{field}` |")]
            assert row.split("|")[4].strip() == f"`{defaults[field]}`", row
        [trigger_row] = [line for line in sections["The document"].splitlines()
                         if line.startswith("| `trigger` |")]
        assert "`{type: manual}`" in trigger_row

    def test_says_how_to_point_an_editor_at_the_schema(self) -> None:
        text = DOCS.read_text()

        modeline = "# yaml-language-server: $schema=http://127.0.0.1:8000/api/v1/schema/workflow.json"
        assert modeline in text
        assert f"src/relayflow/engine/{workflow_schema.SCHEMA_FILE}" in text


def _example_ids() -> list[Any]:
    return [*(pytest.param(block, id=f"docs:{key}") for key, block in DOC_EXAMPLES.items()),
            *(pytest.param(path.read_text(), id=str(path.relative_to(ROOT)))
              for path in EXAMPLE_FILES)]


class TestExamples:
    def test_the_docs_show_every_node_and_trigger_type(self) -> None:
        definitions = [parse_definition(block) for block in DOC_EXAMPLES.values()]
        node_types = {n["type"] for d in definitions for n in d["nodes"].values()}
        triggers = {(d.get("trigger") or {"type": "manual"})["type"] for d in definitions}

        assert node_types == set(NODE_TYPES)
        assert triggers == set(TRIGGER_TYPES)

    @pytest.mark.parametrize("text", _example_ids())
    def test_is_valid_for_the_validator_and_the_schema(
        self, checker: jsonschema_rs.Validator, text: str
    ) -> None:
        data = parse_definition(text)

        assert validate(data) == []
        assert [e.message for e in checker.iter_errors(data)] == []


def _valid() -> dict[str, Any]:
    return {"key": "drip", "start": "hello", "nodes": {
        "hello": {"type": "SEND_MESSAGE", "channel": "email", "body": "Hi", "next": "done"},
        "done": {"type": "END"}}}


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data = _valid()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


class TestInvalidDefinitions:
    @pytest.mark.parametrize("data", [
        pytest.param(_with(("nodes", "done", "type"), "FINISH"), id="unknown node type"),
        pytest.param(_with(("nodes", "done", "type"), "end"), id="lower-case node type"),
        pytest.param(_with(("trigger",), {"type": "cron"}), id="unknown trigger type"),
        pytest.param(_with(("nodes", "hello"), {"type": "SEND_MESSAGE", "channel": "email",
                                                "next": "done"}), id="missing body"),
        pytest.param({"start": "done", "nodes": {"done": {"type": "END"}}}, id="missing key"),
        pytest.param(_with(("nodes", "hello", "body"), ["Hi"]), id="body of the wrong type"),
        pytest.param(_with(("nodes", "hello", "next"), 3), id="next of the wrong type"),
        pytest.param(_with(("nodes", "hello", "channel"), "fax"), id="unknown channel"),
        pytest.param(_with(("nodes", "hello", "colour"), "red"), id="unknown node field"),
        pytest.param(_with(("owner",), "ops"), id="unknown top-level field"),
        pytest.param(_with(("key",), "Drip Campaign"), id="key that is no slug"),
        pytest.param(_with(("nodes", "wait"), {"type": "WAIT", "duration": "2 days",
                                               "next": "done"}), id="bad duration"),
        pytest.param(_with(("trigger",), {"type": "schedule", "at": 20261201}),
                     id="at that is a number"),
        pytest.param(_with(("nodes", "hello"), {
            "type": "INTEGRATION", "request": {"url": "https://api.example.com/"},
            "capture": {"tier\n": "body.tier"}, "next": "done"}), id="capture name with a newline"),
    ])
    def test_is_refused_by_both(
        self, checker: jsonschema_rs.Validator, data: dict[str, Any]
    ) -> None:
        assert validate(data) != []
        assert not checker.is_valid(data)


# --- one field changed at a time -------------------------------------------------------


def _containers(data: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], set[str]]]:
    """(path, fields the validator's tables allow there) of every object of a definition
    whose fields the validator knows: the document, its trigger, each node, each SPLIT
    branch, each INTEGRATION request and a webhook's contact mapping."""
    yield (), set(TOP_LEVEL)
    trigger = data.get("trigger")
    if isinstance(trigger, dict) and trigger.get("type") in TRIGGER_FIELDS:
        yield ("trigger",), {"type"} | TRIGGER_FIELDS[trigger["type"]]
        if isinstance(trigger.get("contact"), dict):
            yield ("trigger", "contact"), set(CONTACT_FIELDS)
    for node_id, node in data["nodes"].items():
        spec = SPECS[node["type"]]
        yield ("nodes", node_id), COMMON | spec.required | spec.optional
        for i, _ in enumerate(node.get("branches") or []):
            yield ("nodes", node_id, "branches", i), set(BRANCH_FIELDS)
        if isinstance(node.get("request"), dict):
            yield ("nodes", node_id, "request"), set(REQUEST_FIELDS)


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _mutations(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, fields in _containers(data):
        where = ".".join(map(str, path)) or "(document)"
        for field in sorted(fields | {"colour"}):
            present = field in _at(data, path)
            if present:
                changed = copy.deepcopy(data)
                del _at(changed, path)[field]
                yield f"{where}: without {field}", changed
            for value in ODD_VALUES:
                changed = copy.deepcopy(data)
                _at(changed, path)[field] = value
                yield f"{where}: {field} = {value!r}", changed
        if path[:1] == ("nodes",) and len(path) == 2:
            kinds = [t for t in NODE_TYPES if t != _at(data, path)["type"]]
        elif path == ("trigger",):
            kinds = [t for t in TRIGGER_TYPES if t != _at(data, path)["type"]]
        else:
            kinds = []
        for kind in kinds:
            changed = copy.deepcopy(data)
            _at(changed, path)["type"] = kind
            yield f"{where}: type = {kind}", changed


class TestOneFieldChanged:
    @pytest.mark.parametrize("key", DOC_EXAMPLES)
    def test_schema_and_validator_agree(
        self, checker: jsonschema_rs.Validator, key: str
    ) -> None:
        disagreements = []
        count = 0
        for what, changed in _mutations(parse_definition(DOC_EXAMPLES[key])):
            count += 1
            by_validator = validate(changed) == []
            by_schema = checker.is_valid(changed)
            if by_validator != by_schema:
                disagreements.append(f"{what}: validator {'accepts' if by_validator else 'refuses'}"
                                     f", schema {'accepts' if by_schema else 'refuses'}")

        assert count >= 50
        assert disagreements == []
