from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from relayflow.engine.graph import Node, WorkflowGraph, parse_definition
from relayflow.engine.validation import load
from relayflow.errors import InvalidGraph, MalformedInput, Problem
from tests.engine.builders import DESIGN_EXAMPLE_YAML, minimal_definition


class TestParseDefinition:
    def test_yaml_document_becomes_a_dict(self) -> None:
        data = parse_definition(DESIGN_EXAMPLE_YAML)

        assert data["key"] == "onboarding"
        assert data["nodes"]["wait_2d"] == {"type": "WAIT", "duration": "2d", "next": "done"}

    def test_json_document_without_content_type(self) -> None:
        raw = json.dumps(minimal_definition())

        assert parse_definition(raw) == minimal_definition()

    def test_json_document_with_json_content_type(self) -> None:
        raw = json.dumps(minimal_definition()).encode()

        assert parse_definition(raw, content_type="application/json") == minimal_definition()

    def test_yaml_bytes_with_yaml_content_type(self) -> None:
        data = parse_definition(DESIGN_EXAMPLE_YAML.encode(), content_type="application/yaml")

        assert data["start"] == "check_plan"

    def test_invalid_json_with_json_content_type_is_malformed(self) -> None:
        with pytest.raises(MalformedInput, match="not valid YAML or JSON"):
            parse_definition('{"key": "a",', content_type="application/json")

    @pytest.mark.parametrize(
        "raw",
        ["key: [unclosed", "nodes: {a: b", "\tkey: x\n  - y: : :", "!!python/object:os.system {}"],
    )
    def test_garbage_yaml_is_malformed(self, raw: str) -> None:
        with pytest.raises(MalformedInput):
            parse_definition(raw)

    def test_bytes_that_are_not_utf8_are_malformed(self) -> None:
        with pytest.raises(MalformedInput):
            parse_definition(b"\xff\xfe\x00key: \xc3")

    @pytest.mark.parametrize("content_type", ["", "application/json"])
    def test_absurdly_deep_nesting_is_malformed(self, content_type: str) -> None:
        with pytest.raises(MalformedInput):
            parse_definition("[" * 100_000, content_type=content_type)

    @pytest.mark.parametrize("raw", ["- a\n- b\n", "just a string", "42", "", "null", "[1, 2]"])
    def test_non_mapping_is_malformed(self, raw: str) -> None:
        with pytest.raises(MalformedInput, match="must be a mapping"):
            parse_definition(raw)


class TestLoad:
    def test_valid_definition_gives_a_graph(self) -> None:
        graph = load(parse_definition(DESIGN_EXAMPLE_YAML), known_secrets={"CRM_TOKEN"})

        assert isinstance(graph, WorkflowGraph)
        assert graph.key == "onboarding"
        assert graph.start == "check_plan"
        assert graph.trigger_type == "webhook"
        assert {n.type for n in graph.nodes.values()} == {
            "CONDITION", "INTEGRATION", "SEND_MESSAGE", "WAIT", "END"
        }

    def test_invalid_definition_raises_invalid_graph_with_every_problem(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["next"] = "nowhere"
        data["nodes"]["ghost"] = {"type": "TELEPORT"}

        with pytest.raises(InvalidGraph) as caught:
            load(data)

        nodes = {p.node for p in caught.value.problems}
        assert {"hello", "ghost"} <= nodes
        assert all(isinstance(p, Problem) for p in caught.value.problems)
        assert caught.value.status_code == 422

    def test_extra_lists_problems_as_node_and_message(self) -> None:
        data = minimal_definition()
        data["nodes"]["done"]["colour"] = "red"

        with pytest.raises(InvalidGraph) as caught:
            load(data)

        assert caught.value.extra() == {
            "problems": [{"node": "done", "message": "unknown field 'colour' for END"}]
        }

    def test_known_secrets_are_checked(self) -> None:
        data = parse_definition(DESIGN_EXAMPLE_YAML)

        with pytest.raises(InvalidGraph) as caught:
            load(data, known_secrets={"OTHER"})

        assert [p.as_dict() for p in caught.value.problems] == [
            {"node": "lookup", "message": "unknown secret 'CRM_TOKEN'"}
        ]

    def test_known_workflows_are_checked(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"] = {"type": "TRIGGER_WORKFLOW", "workflow": "billing", "next": "done"}

        with pytest.raises(InvalidGraph) as caught:
            load(data, known_workflows={"onboarding"})

        assert caught.value.problems == [Problem("hello", "unknown upstream workflow 'billing'")]


class TestFromDict:
    def test_name_defaults_to_key(self) -> None:
        data = minimal_definition()
        del data["name"]

        assert WorkflowGraph.from_dict(data).name == "drip"

    def test_missing_trigger_is_manual(self) -> None:
        data = minimal_definition()
        del data["trigger"]

        graph = WorkflowGraph.from_dict(data)

        assert graph.trigger_type == "manual"
        assert dict(graph.trigger) == {"type": "manual"}

    def test_nodes_carry_id_type_and_read_only_config(self) -> None:
        graph = WorkflowGraph.from_dict(minimal_definition())
        hello = graph.nodes["hello"]

        assert (hello.id, hello.type) == ("hello", "SEND_MESSAGE")
        assert hello.config["body"] == "Hi"
        assert isinstance(hello.config, MappingProxyType)
        with pytest.raises(TypeError):
            hello.config["body"] = "changed"  # type: ignore[index]

    def test_graph_does_not_share_state_with_the_input(self) -> None:
        data = minimal_definition()
        graph = WorkflowGraph.from_dict(data)

        data["nodes"]["hello"]["body"] = "mutated"

        assert graph.nodes["hello"].config["body"] == "Hi"


def _node(type_: str, **config: object) -> Node:
    return Node(id="n", type=type_, config={"type": type_, **config})


class TestEdges:
    def test_condition_has_then_and_else(self) -> None:
        node = _node("CONDITION", when="true", then="a", **{"else": "b"})

        assert node.edges() == [("then", "a"), ("else", "b")]

    def test_split_has_one_edge_per_branch(self) -> None:
        node = _node("SPLIT", branches=[{"weight": 1, "next": "a"}, {"weight": 2, "next": "b"}])

        assert node.edges() == [("branch 0", "a"), ("branch 1", "b")]

    def test_split_skips_malformed_branches(self) -> None:
        node = _node("SPLIT", branches=[{"weight": 1}, "junk", {"weight": 1, "next": "b"}])

        assert node.edges() == [("branch 2", "b")]

    def test_integration_has_next_and_on_error(self) -> None:
        node = _node("INTEGRATION", request={}, next="a", on_error="b")

        assert node.edges() == [("next", "a"), ("on_error", "b")]

    def test_on_error_is_not_an_edge_of_other_types(self) -> None:
        node = _node("SEND_MESSAGE", next="a", on_error="b")

        assert node.edges() == [("next", "a")]

    @pytest.mark.parametrize("type_", ["END", "STOP_ERROR"])
    def test_terminal_nodes_have_no_edges(self, type_: str) -> None:
        assert _node(type_, message="x").edges() == []

    def test_non_string_targets_are_ignored(self) -> None:
        assert _node("WAIT", duration="1s", next=["a"]).edges() == []


class TestParseDefinitionPlainData:
    def test_unquoted_yaml_timestamps_stay_strings(self):
        data = parse_definition("key: k\ntrigger: {type: schedule, at: 2026-12-01T09:00:00}\n",
                                content_type="application/yaml")
        assert data["trigger"]["at"] == "2026-12-01T09:00:00"

    def test_alias_bomb_is_refused(self):
        lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 9):
            prev = chr(ord("a") + i - 1)
            name = chr(ord("a") + i)
            lines.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, "
                         f"*{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
        with pytest.raises(MalformedInput, match="expands to more than"):
            parse_definition("\n".join(lines))

    def test_non_json_values_are_refused(self):
        with pytest.raises(MalformedInput, match="JSON cannot carry"):
            parse_definition("key: k\nblob: !!binary aGVsbG8=\n")
