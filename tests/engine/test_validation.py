from __future__ import annotations

from typing import Any

import pytest

from relayflow.engine.graph import parse_definition
from relayflow.engine.validation import validate
from tests.engine.builders import (
    DESIGN_EXAMPLE_YAML,
    assert_problem,
    minimal_definition,
    problems_for,
)

END = {"type": "END"}


def definition(nodes: dict[str, Any], *, start: str | None = None, **top: Any) -> dict[str, Any]:
    data = {"key": "drip", "trigger": {"type": "manual"}, "start": start or next(iter(nodes))}
    data["nodes"] = nodes
    data.update(top)
    return data


def send(next_: str = "done", **over: Any) -> dict[str, Any]:
    return {"type": "SEND_MESSAGE", "channel": "email", "body": "Hi", "next": next_, **over}


def integration(next_: str = "done", **request: Any) -> dict[str, Any]:
    return {
        "type": "INTEGRATION",
        "request": {"method": "GET", "url": "https://api.example.com/x", **request},
        "next": next_,
    }


def with_trigger(trigger: Any) -> dict[str, Any]:
    data = minimal_definition()
    data["trigger"] = trigger
    return data


class TestValidate:
    # --- clean definitions --------------------------------------------------------------

    def test_design_example_is_clean(self) -> None:
        data = parse_definition(DESIGN_EXAMPLE_YAML)

        assert validate(data, known_secrets={"CRM_TOKEN"}, known_workflows=set()) == []

    def test_minimal_definition_is_clean(self) -> None:
        assert validate(minimal_definition()) == []

    def test_every_node_type_in_one_definition_is_clean(self) -> None:
        data = definition(
            {
                "split": {"type": "SPLIT", "branches": [
                    {"weight": 1, "next": "cond", "name": "a"}, {"weight": 1.5, "next": "wait"}
                ]},
                "cond": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                         "then": "call", "else": "wait"},
                "wait": {"type": "WAIT", "until": "{{ event.at }}", "next": "call"},
                "call": {**integration("update", body={"k": ["{{ contact.email }}"]}),
                         "on_error": "stop", "capture": {"tier": "body.tier"}, "timeout": 5,
                         "retries": 2},
                "update": {"type": "UPDATE_CONTACT", "set": {"tier": "{{ steps.call.tier }}"},
                           "next": "child"},
                "child": {"type": "TRIGGER_WORKFLOW", "workflow": "billing", "next": "sms"},
                "sms": send("done", channel="sms", to="{{ contact.phone }}", on_failure="continue"),
                "done": END,
                "stop": {"type": "STOP_ERROR", "message": "call failed: {{ steps.call.error }}"},
            }
        )

        assert validate(data, known_secrets=set(), known_workflows={"billing"}) == []

    def test_schedule_trigger_is_clean(self) -> None:
        data = with_trigger({"type": "schedule", "cron": "0 9 * * 1", "timezone": "Europe/Paris",
                             "audience": "contact.plan == 'pro'"})

        assert validate(data) == []

    def test_cycle_with_a_wait_is_accepted(self) -> None:
        data = definition({
            "check": {"type": "CONDITION", "when": "contact.done", "then": "done", "else": "nudge"},
            "nudge": send("pause"),
            "pause": {"type": "WAIT", "duration": "1d", "next": "check"},
            "done": END,
        })

        assert validate(data) == []

    # --- node types and fields ----------------------------------------------------------

    def test_unknown_node_type_names_the_type(self) -> None:
        data = minimal_definition()
        data["nodes"]["done"] = {"type": "TELEPORT"}

        problems = validate(data)

        assert_problem(problems, "done", "unknown node type 'TELEPORT'", "CONDITION", "STOP_ERROR")

    def test_node_without_a_type_is_unknown(self) -> None:
        data = minimal_definition()
        data["nodes"]["done"] = {"message": "x"}

        assert_problem(validate(data), "done", "unknown node type None")

    def test_lower_case_type_is_unknown(self) -> None:
        data = minimal_definition()
        data["nodes"]["done"] = {"type": "end"}

        assert_problem(validate(data), "done", "unknown node type 'end'")

    def test_unknown_field_on_a_node(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["colour"] = "red"

        assert_problem(validate(data), "hello", "unknown field 'colour' for SEND_MESSAGE")

    def test_field_of_another_type_is_unknown(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["on_error"] = "done"

        assert_problem(validate(data), "hello", "unknown field 'on_error' for SEND_MESSAGE")

    def test_unknown_field_at_top_level(self) -> None:
        data = minimal_definition()
        data["owner"] = "ops"

        problems = validate(data)

        assert_problem(problems, None, "unknown field 'owner'")

    def test_non_string_yaml_keys_are_reported_not_crashed_on(self) -> None:
        # YAML 1.1 reads `on:` and `yes:` as booleans; a user can type them anywhere.
        data = parse_definition(
            "key: drip\non: push\n12: x\nstart: a\n"
            "nodes:\n  a: {type: END, yes: 1, colour: red}\n"
        )

        problems = validate(data)

        assert_problem(problems, None, "unknown field True")
        assert_problem(problems, None, "unknown field 12")
        assert_problem(problems, "a", "unknown field True for END")
        assert_problem(problems, "a", "unknown field 'colour' for END")

    @pytest.mark.parametrize(
        ("node", "missing"),
        [
            ({"type": "SEND_MESSAGE", "channel": "email", "next": "done"}, "body"),
            ({"type": "SEND_MESSAGE", "body": "x", "next": "done"}, "channel"),
            ({"type": "INTEGRATION", "next": "done"}, "request"),
            ({"type": "CONDITION", "when": "true", "then": "done"}, "else"),
            ({"type": "SPLIT"}, "branches"),
            ({"type": "WAIT", "duration": "1s"}, "next"),
            ({"type": "UPDATE_CONTACT", "next": "done"}, "set"),
            ({"type": "TRIGGER_WORKFLOW", "next": "done"}, "workflow"),
        ],
    )
    def test_missing_required_field(self, node: dict[str, Any], missing: str) -> None:
        data = definition({"first": node, "done": END})

        assert_problem(validate(data), "first", f"missing required field {missing!r}", node["type"])

    def test_bad_node_id(self) -> None:
        data = minimal_definition()
        data["nodes"]["bad-id!"] = END

        assert_problem(validate(data), "bad-id!", "node id must start with a letter")

    def test_node_that_is_not_a_mapping(self) -> None:
        data = minimal_definition()
        data["nodes"]["done"] = "END"

        assert_problem(validate(data), "done", "must be a mapping")

    def test_empty_nodes(self) -> None:
        data = minimal_definition()
        data["nodes"] = {}

        assert_problem(validate(data), None, "nodes must be a non-empty mapping")

    # --- graph shape --------------------------------------------------------------------

    def test_edge_to_a_missing_node(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["next"] = "nowhere"

        assert_problem(validate(data), "hello", "edge 'next' points to missing node 'nowhere'")

    def test_condition_edge_to_a_missing_node_names_the_edge(self) -> None:
        data = definition({
            "check": {"type": "CONDITION", "when": "true", "then": "done", "else": "gone"},
            "done": END,
        })

        assert_problem(validate(data), "check", "edge 'else' points to missing node 'gone'")

    def test_split_edge_to_a_missing_node_names_the_branch(self) -> None:
        data = definition({
            "ab": {"type": "SPLIT", "branches": [{"weight": 1, "next": "done"},
                                                 {"weight": 1, "next": "gone"}]},
            "done": END,
        })

        assert_problem(validate(data), "ab", "edge 'branch 1' points to missing node 'gone'")

    def test_unreachable_node(self) -> None:
        data = minimal_definition()
        data["nodes"]["orphan"] = send()

        problems = validate(data)

        assert_problem(problems, "orphan", "unreachable", "'hello'")
        assert problems_for(problems, "hello") == []

    def test_path_that_never_reaches_end_or_stop_error(self) -> None:
        data = definition({
            "check": {"type": "CONDITION", "when": "contact.vip", "then": "done", "else": "loop"},
            "loop": send("pause"),
            "pause": {"type": "WAIT", "duration": "1d", "next": "loop"},
            "done": END,
        })

        problems = validate(data)

        for node in ("loop", "pause"):
            assert_problem(problems, node, "no path from this node reaches an END or STOP_ERROR")
        assert problems_for(problems, "check") == []

    def test_stop_error_counts_as_an_ending(self) -> None:
        data = definition({"hello": send("stop"), "stop": {"type": "STOP_ERROR", "message": "x"}})

        assert validate(data) == []

    def test_cycle_without_a_wait(self) -> None:
        data = definition({
            "check": {"type": "CONDITION", "when": "contact.done", "then": "done", "else": "nudge"},
            "nudge": send("check"),
            "done": END,
        })

        problems = validate(data)

        assert_problem(problems, "check", "cycle without a WAIT through check, nudge")

    def test_self_loop_without_a_wait(self) -> None:
        data = definition({
            "check": {"type": "CONDITION", "when": "contact.done", "then": "done", "else": "check"},
            "done": END,
        })

        assert_problem(validate(data), "check", "cycle without a WAIT through check")

    def test_inner_cycle_without_a_wait_is_reported_despite_an_outer_wait(self) -> None:
        data = definition({
            "a": {"type": "CONDITION", "when": "x", "then": "b", "else": "done"},
            "b": {"type": "CONDITION", "when": "y", "then": "a", "else": "w"},
            "w": {"type": "WAIT", "duration": "1h", "next": "a"},
            "done": END,
        })

        assert_problem(validate(data), "a", "cycle without a WAIT through a, b")

    # --- templates and references -------------------------------------------------------

    def test_template_syntax_error_in_when(self) -> None:
        data = definition({
            "check": {"type": "CONDITION", "when": "contact.plan ==", "then": "done",
                      "else": "done"},
            "done": END,
        })

        assert_problem(validate(data), "check", "when: template syntax error")

    def test_template_syntax_error_in_body(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["body"] = "Hi {{ contact.first_name "

        assert_problem(validate(data), "hello", "body: template syntax error", "line 1")

    def test_template_syntax_error_in_url(self) -> None:
        data = definition({"call": integration(url="https://x.example.com/{{ }}"), "done": END})

        assert_problem(validate(data), "call", "request.url: template syntax error")

    def test_template_syntax_error_in_header(self) -> None:
        data = definition({
            "call": integration(headers={"X-Tier": "{% if contact.vip %}gold"}), "done": END
        })

        assert_problem(validate(data), "call", "request.headers.X-Tier: template syntax error")

    def test_template_syntax_error_in_request_body(self) -> None:
        data = definition({"call": integration(body={"a": ["{{ x ) }}"]}), "done": END})

        assert_problem(validate(data), "call", "request.body: template syntax error")

    def test_template_syntax_error_is_reported_once(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["body"] = "{{ oops"

        assert len(problems_for(validate(data), "hello")) == 1

    def test_unknown_secret(self) -> None:
        data = definition({
            "call": integration(headers={"Authorization": "Bearer {{ secrets.NOPE }}"}),
            "done": END,
        })

        problems = validate(data, known_secrets={"CRM_TOKEN"})

        assert_problem(problems, "call", "unknown secret 'NOPE'")

    def test_secret_names_are_not_checked_without_known_secrets(self) -> None:
        data = definition({"call": integration(url="https://x.example.com/{{ secrets.NOPE }}"),
                           "done": END})

        assert validate(data) == []

    def test_known_secret_in_request_body_is_clean(self) -> None:
        data = definition({"call": integration(body={"key": "{{ secrets['API_KEY'] }}"}),
                           "done": END})

        assert validate(data, known_secrets={"API_KEY"}) == []

    def test_secret_named_dynamically_is_refused(self) -> None:
        data = definition({"call": integration(url="https://x.example.com/{{ secrets }}"),
                           "done": END})

        assert_problem(validate(data), "call", "secrets must be named directly")

    @pytest.mark.parametrize(
        "node",
        [
            send(body="token {{ secrets.CRM_TOKEN }}"),
            send(to="{{ secrets.CRM_TOKEN }}@example.com"),
            {"type": "CONDITION", "when": "secrets.CRM_TOKEN == 'x'", "then": "done",
             "else": "done"},
            {"type": "STOP_ERROR", "message": "{{ secrets.CRM_TOKEN }}"},
            {"type": "UPDATE_CONTACT", "set": {"t": "{{ secrets.CRM_TOKEN }}"}, "next": "done"},
            {"type": "WAIT", "until": "{{ secrets.CRM_TOKEN }}", "next": "done"},
        ],
    )
    def test_secrets_outside_an_integration_request(self, node: dict[str, Any]) -> None:
        data = definition({"leak": node, "done": END})

        problems = validate(data, known_secrets={"CRM_TOKEN"})

        assert_problem(problems, "leak", "secrets can only be used inside an INTEGRATION request")

    def test_unknown_upstream_workflow(self) -> None:
        data = definition({
            "child": {"type": "TRIGGER_WORKFLOW", "workflow": "billing", "next": "done"},
            "done": END,
        })

        assert_problem(validate(data, known_workflows={"onboarding"}), "child",
                       "unknown upstream workflow 'billing'")

    def test_upstream_workflow_is_not_checked_without_known_workflows(self) -> None:
        data = definition({
            "child": {"type": "TRIGGER_WORKFLOW", "workflow": "billing", "next": "done"},
            "done": END,
        })

        assert validate(data) == []

    def test_upstream_workflow_must_be_a_key(self) -> None:
        data = definition({
            "child": {"type": "TRIGGER_WORKFLOW", "workflow": "Not A Key", "next": "done"},
            "done": END,
        })

        assert_problem(validate(data), "child", "workflow must be the key of another workflow")

    # --- top level: key, start, trigger -------------------------------------------------

    @pytest.mark.parametrize("key", ["Has Spaces", "UPPER", "-leading", "", 42, "x" * 65])
    def test_bad_key(self, key: Any) -> None:
        data = minimal_definition()
        data["key"] = key

        assert_problem(validate(data), None, "key must be a slug")

    def test_missing_key(self) -> None:
        data = minimal_definition()
        del data["key"]

        assert_problem(validate(data), None, "key must be a slug")

    def test_missing_start(self) -> None:
        data = minimal_definition()
        del data["start"]

        assert_problem(validate(data), None, "start must name the first node")

    def test_start_pointing_to_a_missing_node(self) -> None:
        data = minimal_definition()
        data["start"] = "nowhere"

        assert_problem(validate(data), None, "start points to missing node 'nowhere'")

    def test_missing_trigger_is_manual(self) -> None:
        data = minimal_definition()
        del data["trigger"]

        assert validate(data) == []

    def test_unknown_trigger_type(self) -> None:
        assert_problem(validate(with_trigger({"type": "cronjob"})), None,
                       "trigger: unknown type 'cronjob'", "manual", "upstream")

    def test_trigger_that_is_not_a_mapping(self) -> None:
        assert_problem(validate(with_trigger("manual")), None, "trigger must be a mapping")

    def test_unknown_trigger_field(self) -> None:
        data = with_trigger({"type": "manual", "cron": "* * * * *"})

        assert_problem(validate(data), None, "trigger: unknown field 'cron' for a manual trigger")

    def test_webhook_contact_field_must_be_an_address(self) -> None:
        data = with_trigger({"type": "webhook", "contact": {"name": "{{ event.name }}"}})

        assert_problem(validate(data), None, "contact field 'name'")

    def test_webhook_contact_template_syntax_error(self) -> None:
        data = with_trigger({"type": "webhook", "contact": {"email": "{{ event.email "}})

        assert_problem(validate(data), None, "trigger.contact.email: template syntax error")

    @pytest.mark.parametrize("cron", ["not a cron", "99 * * * *", "* * *", ""])
    def test_bad_cron(self, cron: str) -> None:
        data = with_trigger({"type": "schedule", "cron": cron})

        assert_problem(validate(data), None, f"trigger: invalid cron expression {cron!r}")

    @pytest.mark.parametrize(
        "timezone", ["Mars/Olympus", "America", "", "../etc/passwd", "x" * 300, "UTC\x00"]
    )
    def test_bad_timezone(self, timezone: str) -> None:
        data = with_trigger({"type": "schedule", "cron": "0 9 * * *", "timezone": timezone})

        assert_problem(validate(data), None, f"trigger: unknown timezone {timezone!r}")

    def test_schedule_needs_cron_or_at(self) -> None:
        assert_problem(validate(with_trigger({"type": "schedule"})), None,
                       "exactly one of cron or at")

    def test_schedule_with_both_cron_and_at(self) -> None:
        data = with_trigger({"type": "schedule", "cron": "0 9 * * *", "at": "2030-01-01T09:00"})

        assert_problem(validate(data), None, "exactly one of cron or at")

    def test_schedule_at_must_be_iso(self) -> None:
        data = with_trigger({"type": "schedule", "at": "next tuesday"})

        assert_problem(validate(data), None, "at must be an ISO 8601 datetime")

    def test_schedule_audience_syntax_error(self) -> None:
        data = with_trigger({"type": "schedule", "cron": "0 9 * * *", "audience": "contact.x =="})

        assert_problem(validate(data), None, "trigger.audience: template syntax error")

    # --- SPLIT, WAIT, SEND_MESSAGE, INTEGRATION, UPDATE_CONTACT specifics ---------------

    @pytest.mark.parametrize("weight", [0, -1, "heavy", True, None])
    def test_bad_split_weight(self, weight: Any) -> None:
        data = definition({
            "ab": {"type": "SPLIT", "branches": [{"weight": 1, "next": "done"},
                                                 {"weight": weight, "next": "done"}]},
            "done": END,
        })

        problems = validate(data)

        assert_problem(problems, "ab", "branch 1: weight must be a positive number")
        assert problems_for(problems, "ab", "branch 0") == []

    @pytest.mark.parametrize("branches", [[], "a,b", {"weight": 1, "next": "done"}])
    def test_split_branches_must_be_a_non_empty_list(self, branches: Any) -> None:
        data = definition({"ab": {"type": "SPLIT", "branches": branches}, "done": END})

        assert_problem(validate(data), "ab", "branches must be a non-empty list")

    def test_split_branch_unknown_field_and_missing_next(self) -> None:
        data = definition({
            "ab": {"type": "SPLIT", "branches": [{"weight": 1, "next": "done"},
                                                 {"weight": 1, "goto": "done"}]},
            "done": END,
        })

        problems = validate(data)

        assert_problem(problems, "ab", "branch 1: unknown field 'goto'")
        assert_problem(problems, "ab", "branch 1: next must name a node")

    @pytest.mark.parametrize(
        ("fields", "fragment"),
        [
            ({"duration": "1d", "until": "{{ event.at }}"}, "exactly one of duration or until"),
            ({}, "exactly one of duration or until"),
            ({"duration": "2 days"}, "invalid duration '2 days'"),
            ({"duration": 30}, "invalid duration 30"),
            ({"duration": "400d"}, "longer than 366 days"),
            ({"duration": "99999999999999999999d"}, "longer than 366 days"),
            ({"until": "{{ event.at "}, "until: template syntax error"),
        ],
    )
    def test_bad_wait(self, fields: dict[str, Any], fragment: str) -> None:
        data = definition({"pause": {"type": "WAIT", "next": "done", **fields}, "done": END})

        assert_problem(validate(data), "pause", fragment)

    def test_bad_channel(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["channel"] = "pigeon"

        assert_problem(validate(data), "hello", "channel must be email or sms, got 'pigeon'")

    def test_bad_on_failure(self) -> None:
        data = minimal_definition()
        data["nodes"]["hello"]["on_failure"] = "ignore"

        assert_problem(validate(data), "hello", "on_failure must be fail or continue")

    @pytest.mark.parametrize(
        ("node", "fragment"),
        [
            ({**integration(), "request": "GET https://x"}, "request must be a mapping"),
            (integration(method="FETCH"), "request: method must be one of"),
            (integration(proxy="x"), "request: unknown field 'proxy'"),
            ({"type": "INTEGRATION", "request": {"method": "GET"}, "next": "done"},
             "request: missing url"),
            (integration(headers=["a"]), "headers must be a mapping"),
            ({**integration(), "capture": {"tier": "json.tier"}}, "path must start with status"),
            ({**integration(), "capture": {"bad name": "body.x"}}, "must be an identifier"),
            ({**integration(), "timeout": 0}, "timeout must be a number"),
            ({**integration(), "timeout": 301}, "timeout must be a number"),
            ({**integration(), "retries": 11}, "retries must be a whole number"),
            ({**integration(), "retries": 1.5}, "retries must be a whole number"),
        ],
    )
    def test_bad_integration(self, node: dict[str, Any], fragment: str) -> None:
        data = definition({"call": node, "done": END})

        assert_problem(validate(data), "call", fragment)

    @pytest.mark.parametrize("attribute", ["email", "phone", "id", "external_id"])
    def test_update_contact_cannot_change_identity(self, attribute: str) -> None:
        data = definition({
            "update": {"type": "UPDATE_CONTACT", "set": {attribute: "x"}, "next": "done"},
            "done": END,
        })

        assert_problem(validate(data), "update", f"set: {attribute!r} is not an attribute")

    def test_update_contact_template_syntax_error(self) -> None:
        data = definition({
            "update": {"type": "UPDATE_CONTACT", "set": {"tier": "{{ x"}, "next": "done"},
            "done": END,
        })

        assert_problem(validate(data), "update", "set.tier: template syntax error")

    # --- everything at once -------------------------------------------------------------

    def test_every_problem_is_reported_at_once(self) -> None:
        data = {
            "key": "Bad Key",
            "owner": "ops",
            "trigger": {"type": "schedule", "cron": "every day", "timezone": "Mars/Olympus"},
            "start": "check",
            "nodes": {
                "check": {"type": "CONDITION", "when": "contact.plan ==", "then": "call",
                          "else": "nowhere"},
                "call": {"type": "INTEGRATION",
                         "request": {"url": "https://x.example.com/{{ secrets.NOPE }}"},
                         "next": "greet"},
                "greet": {"type": "SEND_MESSAGE", "channel": "email", "colour": "red",
                          "body": "{{ secrets.CRM_TOKEN }}", "next": "ab"},
                "ab": {"type": "SPLIT", "branches": [{"weight": 0, "next": "pause"}]},
                "pause": {"type": "WAIT", "duration": "soon", "next": "child"},
                "child": {"type": "TRIGGER_WORKFLOW", "workflow": "billing", "next": "loop"},
                "loop": {"type": "CONDITION", "when": "true", "then": "loop2", "else": "done"},
                "loop2": {"type": "UPDATE_CONTACT", "set": {"n": "1"}, "next": "loop"},
                "mystery": {"type": "TELEPORT"},
                "orphan": {"type": "END"},
                "done": {"type": "END"},
                "stuck": {"type": "SEND_MESSAGE", "channel": "email", "body": "x",
                          "next": "stuck_wait"},
                "stuck_wait": {"type": "WAIT", "duration": "1h", "next": "stuck"},
            },
        }

        problems = validate(data, known_secrets={"CRM_TOKEN"}, known_workflows={"onboarding"})

        expected = [
            (None, "key must be a slug"),
            (None, "unknown field 'owner'"),
            (None, "invalid cron expression 'every day'"),
            (None, "unknown timezone 'Mars/Olympus'"),
            ("check", "when: template syntax error"),
            ("check", "edge 'else' points to missing node 'nowhere'"),
            ("call", "unknown secret 'NOPE'"),
            ("greet", "unknown field 'colour' for SEND_MESSAGE"),
            ("greet", "secrets can only be used inside an INTEGRATION request"),
            ("ab", "weight must be a positive number"),
            ("pause", "invalid duration 'soon'"),
            ("child", "unknown upstream workflow 'billing'"),
            ("loop", "cycle without a WAIT through loop, loop2"),
            ("mystery", "unknown node type 'TELEPORT'"),
            ("orphan", "unreachable"),
            ("stuck", "unreachable"),
            ("stuck_wait", "unreachable"),
        ]
        missing = [(node, msg) for node, msg in expected if not problems_for(problems, node, msg)]
        assert missing == [], f"not reported: {missing}; got {problems}"


class TestWorkflowName:
    def test_a_name_longer_than_the_column_is_refused(self):
        from tests.engine.builders import minimal_definition

        data = {**minimal_definition(), "name": "x" * 201}
        problems = validate(data)
        assert [p.message for p in problems] == ["name must be a string of at most 200 characters"]
        assert validate({**minimal_definition(), "name": "x" * 200}) == []
