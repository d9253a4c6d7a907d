from __future__ import annotations

import copy
from typing import Any

import pytest

from relayflow.engine.graph import parse_definition
from relayflow.engine.outcome import (
    Advance,
    Fail,
    Finish,
    HttpCall,
    HttpResult,
    Perform,
    SendMessage,
    SendResult,
    WaitUntil,
)
from relayflow.engine.stepper import redact, resume, step
from relayflow.engine.validation import load
from tests.engine.builders import CONTACT, DESIGN_EXAMPLE_YAML, graph_of, make_ctx

ESCAPES = [
    "''.__class__.__mro__",
    "''.__class__.__mro__[1].__subclasses__()",
    "cycler.__init__.__globals__",
    "joiner.__init__.__globals__",
    "self.__init__.__globals__",
    "lipsum.__globals__",
    "().__class__.__base__.__subclasses__()",
    "contact.__class__.__init__.__globals__",
    "run.__class__",
    "config",
    "request",
    "'{0.__class__}'.format(1)",
    "'{0.__class__.__init__.__globals__}'.format(contact)",
    "'%s'|format(''.__class__)",
    "''.format.__self__",
    "range.__self__",
]
LEAKS = ("<class", "<module", "<function", "<built-in", "<method", "__builtins__", "object at 0x")


def _escape_graph(expression: str) -> Any:
    return graph_of({
        "greet": {"type": "SEND_MESSAGE", "channel": "email", "body": "x{{ " + expression + " }}",
                  "next": "done"},
        "check": {"type": "CONDITION", "when": expression, "then": "done", "else": "done"},
    })


def _walk(graph: Any, ctx: Any, *, results: dict[str, Any]) -> list[tuple[str, Any]]:
    """Step through a graph, answering effects from `results`; returns (node, outcome) pairs."""
    trace: list[tuple[str, Any]] = []
    node_id: str | None = graph.start
    while node_id is not None:
        outcome = step(graph, node_id, ctx)
        if isinstance(outcome, Perform):
            outcome = resume(graph, node_id, ctx, results[node_id])
        trace.append((node_id, outcome))
        if isinstance(outcome, Advance | WaitUntil):
            ctx.steps[node_id] = dict(outcome.output)
            node_id = outcome.next
        else:
            node_id = None
    return trace


class TestStep:
    def test_missing_contact_attribute_in_body_fails_with_undefined_error(self) -> None:
        graph = graph_of({"greet": {"type": "SEND_MESSAGE", "channel": "email",
                                    "body": "Hi {{ contact.missing }}", "next": "done"}})

        outcome = step(graph, "greet", make_ctx())

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: body: 'dict object' has no attribute "
                                  "'missing' in {{ contact.missing }}")

    def test_default_filter_renders_the_default(self) -> None:
        graph = graph_of({"greet": {"type": "SEND_MESSAGE", "channel": "email",
                                    "body": "Hi {{ contact.missing | default('x') }}",
                                    "next": "done"}})

        outcome = step(graph, "greet", make_ctx())

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, SendMessage)
        assert outcome.effect.body == "Hi x"

    def test_default_covers_a_chain_through_a_step_that_never_ran(self) -> None:
        graph = graph_of({"greet": {"type": "SEND_MESSAGE", "channel": "email",
                                    "body": "{{ steps.lookup.tier | default('standard') }}",
                                    "next": "done"}})

        outcome = step(graph, "greet", make_ctx(steps={}))

        assert isinstance(outcome, Perform)
        assert isinstance(outcome.effect, SendMessage)
        assert outcome.effect.body == "standard"

    def test_chain_through_a_step_that_never_ran_without_default_fails(self) -> None:
        graph = graph_of({"greet": {"type": "SEND_MESSAGE", "channel": "email",
                                    "body": "{{ steps.lookup.tier }}", "next": "done"}})

        outcome = step(graph, "greet", make_ctx(steps={}))

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: body: 'dict object' has no attribute "
                                  "'lookup' in {{ steps.lookup.tier }}")

    def test_contact_is_undefined_on_an_event_run(self) -> None:
        graph = graph_of({"check": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                                    "then": "a", "else": "b"}})

        outcome = step(graph, "check", make_ctx(contact=None))

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: when: 'contact' is undefined in "
                                  "contact.plan == 'pro'")

    @pytest.mark.parametrize("expression", ESCAPES)
    def test_sandbox_escape_in_a_message_body_is_refused(self, expression: str) -> None:
        outcome = step(_escape_graph(expression), "greet", make_ctx())

        assert isinstance(outcome, Fail), outcome
        assert outcome.reason.startswith(("SecurityError:", "UndefinedError:")), outcome.reason
        assert not [leak for leak in LEAKS if leak in repr(outcome)]

    @pytest.mark.parametrize("expression", ESCAPES)
    def test_sandbox_escape_in_a_condition_is_refused(self, expression: str) -> None:
        outcome = step(_escape_graph(expression), "check", make_ctx())

        assert isinstance(outcome, Fail), outcome
        assert outcome.reason.startswith(("SecurityError:", "UndefinedError:")), outcome.reason
        assert not [leak for leak in LEAKS if leak in repr(outcome)]

    @pytest.mark.parametrize(
        "expression",
        ["[].append(1)", "contact.update({'plan': 'free'})", "contact.pop('email')",
         "steps.setdefault('x', 1)", "event.clear()"],
    )
    def test_condition_cannot_mutate_anything(self, expression: str) -> None:
        ctx = make_ctx(event={"k": "v"}, steps={"a": {"b": 1}})

        outcome = step(_escape_graph(expression), "check", ctx)

        assert isinstance(outcome, Fail)
        assert outcome.reason.startswith("SecurityError:")
        assert (ctx.contact, dict(ctx.event), ctx.steps) == (CONTACT, {"k": "v"}, {"a": {"b": 1}})

    def test_design_example_pro_contact_path(self) -> None:
        graph = load(parse_definition(DESIGN_EXAMPLE_YAML), known_secrets={"CRM_TOKEN"})
        ctx = make_ctx(secrets={"CRM_TOKEN": "crm-secret"})
        results = {
            "lookup": HttpResult(status=200, body={"account": {"tier": "gold"}}),
            "welcome": SendResult(attempt_id="att-1", status="SENT"),
        }

        trace = _walk(graph, ctx, results=results)

        assert [node for node, _ in trace] == ["check_plan", "lookup", "welcome", "wait_2d", "done"]
        assert trace[0][1].branch == "then"
        assert ctx.steps["lookup"] == {"tier": "gold", "status": 200}
        assert isinstance(trace[3][1], WaitUntil)
        assert isinstance(trace[-1][1], Finish)

    def test_design_example_other_contact_skips_lookup_and_uses_the_default(self) -> None:
        graph = load(parse_definition(DESIGN_EXAMPLE_YAML), known_secrets={"CRM_TOKEN"})
        ctx = make_ctx(contact={**CONTACT, "plan": "free"})

        trace = _walk(graph, ctx, results={"welcome": SendResult(attempt_id="a", status="SENT")})
        welcome = step(graph, "welcome", ctx)

        assert [node for node, _ in trace] == ["check_plan", "welcome", "wait_2d", "done"]
        assert trace[0][1].branch == "else"
        assert isinstance(welcome, Perform)
        assert isinstance(welcome.effect, SendMessage)
        assert welcome.effect.body == "Your tier: standard"
        assert welcome.effect.subject == "Welcome, Ada"

    def test_end_of_a_walk_finishes(self) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "duration": "1s", "next": "done"},
                          "done": {"type": "END"}})

        assert step(graph, "done", make_ctx()) == Finish()

    def test_step_does_not_mutate_the_context(self) -> None:
        graph = load(parse_definition(DESIGN_EXAMPLE_YAML), known_secrets={"CRM_TOKEN"})
        ctx = make_ctx(secrets={"CRM_TOKEN": "crm-secret"}, steps={"x": {"y": 1}})
        before = copy.deepcopy((ctx.contact, ctx.steps, dict(ctx.secrets)))

        for node_id in graph.nodes:
            step(graph, node_id, ctx)

        assert (ctx.contact, ctx.steps, dict(ctx.secrets)) == before


class TestErrorsNameTheirPlace:
    """A template error names the node field and the expression in it that raised."""

    def _fail(self, body: str, **ctx: Any) -> str:
        graph = graph_of({"greet": {"type": "SEND_MESSAGE", "channel": "email",
                                    "subject": "Hello", "body": body, "next": "done"}})
        outcome = step(graph, "greet", make_ctx(**ctx))
        assert isinstance(outcome, Fail), outcome
        return outcome.reason

    def test_the_failing_expression_among_several_lines(self) -> None:
        reason = self._fail("Hi {{ contact.first_name }},\n"
                            "{% if contact.plan == 'pro' %}Pro{% endif %}\n"
                            "your card {{ contact.card_last4 }} expires")

        assert reason == ("UndefinedError: body: 'dict object' has no attribute "
                          "'card_last4' in {{ contact.card_last4 }}")

    def test_the_expression_naming_what_is_missing_on_a_shared_line(self) -> None:
        reason = self._fail("{{ contact.first_name }} {{ event.order.total }} {{ run.id }}",
                            event={})

        assert reason.endswith("'order' in {{ event.order.total }}")

    def test_an_error_that_names_nothing_gives_the_expressions_of_its_line(self) -> None:
        reason = self._fail("Hi {{ contact.first_name }}\n"
                            "{% for i in [1] %}{{ 10 // (i - 1) }}{% endfor %}\nBye")

        assert reason == ("ZeroDivisionError: body: integer division or modulo by zero "
                          "in {% for i in [1] %}{{ 10 // (i - 1) }}{% endfor %}")

    def test_a_long_expression_is_cut(self) -> None:
        reason = self._fail("{{ contact.nope ~ '" + "x" * 500 + "' }}")

        expression = reason.split(" in ", 1)[1]
        assert len(expression) == 200
        assert expression.endswith("…")

    def test_a_secret_the_error_quotes_is_still_redacted(self) -> None:
        graph = graph_of({"call": {"type": "INTEGRATION", "next": "done", "request": {
            "method": "GET", "url": "https://x.example.com/{{ {}[secrets.TOKEN].id }}"}}})

        outcome = step(graph, "call", make_ctx(secrets={"TOKEN": "tok-5f4dcc3b5aa7"}))

        assert isinstance(outcome, Fail)
        assert "tok-5f4dcc3b5aa7" not in outcome.reason
        assert outcome.reason == ("UndefinedError: request.url: 'dict object' has no "
                                  "attribute '[secret:TOKEN]' in {{ {}[secrets.TOKEN].id }}")

    def test_an_error_outside_any_template_is_told_as_it_was(self) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "until": "tomorrow-ish", "next": "d"}})

        outcome = step(graph, "pause", make_ctx())

        assert isinstance(outcome, Fail)
        assert outcome.reason == "ValueError: Invalid isoformat string: 'tomorrow-ish'"


class TestResume:
    def test_node_without_an_effect_fails(self) -> None:
        graph = graph_of({"done": {"type": "END"}})

        outcome = resume(graph, "done", make_ctx(), SendResult(attempt_id="a", status="SENT"))

        assert isinstance(outcome, Fail)
        assert outcome.reason == "TypeError: END performs no side effect to resume"

    def test_integration_resume_uses_the_real_result(self) -> None:
        graph = load(parse_definition(DESIGN_EXAMPLE_YAML), known_secrets={"CRM_TOKEN"})
        ctx = make_ctx(secrets={"CRM_TOKEN": "crm-secret"})
        performed = step(graph, "lookup", ctx)
        assert isinstance(performed, Perform)
        assert isinstance(performed.effect, HttpCall)

        outcome = resume(graph, "lookup", ctx, HttpResult(status=200, body={"account": {}}))

        assert outcome == Advance(next="welcome", branch="next",
                                  output={"tier": None, "status": 200})


class TestRedact:
    def test_replaces_secret_values_in_nested_values(self) -> None:
        value = {
            "headers": {"Authorization": "Bearer tok-123"},
            "body": ["tok-123", {"deep": "pw=hunter22;"}, 7, None, True],
            "url": "https://x.example.com/?k=tok-123&p=hunter22",
        }

        redacted = redact(value, {"TOKEN": "tok-123", "PASS": "hunter22"})

        assert redacted == {
            "headers": {"Authorization": "Bearer [secret:TOKEN]"},
            "body": ["[secret:TOKEN]", {"deep": "pw=[secret:PASS];"}, 7, None, True],
            "url": "https://x.example.com/?k=[secret:TOKEN]&p=[secret:PASS]",
        }

    def test_longest_secret_is_replaced_first(self) -> None:
        secrets = {"SHORT": "abc", "LONG": "abcdef"}

        assert redact("x=abcdef y=abc", secrets) == "x=[secret:LONG] y=[secret:SHORT]"

    def test_longest_first_does_not_depend_on_order_given(self) -> None:
        secrets = {"LONG": "abcdef", "SHORT": "abc"}

        assert redact("abcdef", secrets) == "[secret:LONG]"

    def test_dict_keys_are_redacted(self) -> None:
        assert redact({"tok-123": "v"}, {"TOKEN": "tok-123"}) == {"[secret:TOKEN]": "v"}

    def test_list_of_values_uses_a_generic_marker(self) -> None:
        assert redact(["a tok-123 b", "pw"], ["tok-123", "pw"]) == [
            "a [secret:secret] b", "[secret:secret]"
        ]

    def test_list_of_values_never_puts_a_value_in_a_marker(self) -> None:
        assert redact("the secret word", ["tok-123"]) == "the secret word"

    def test_every_occurrence_is_replaced(self) -> None:
        assert redact("tok tok tok", {"T": "tok"}) == "[secret:T] [secret:T] [secret:T]"

    def test_empty_secret_values_are_ignored(self) -> None:
        assert redact("hello", {"EMPTY": "", "T": "ell"}) == "h[secret:T]o"

    def test_without_secrets_the_value_is_unchanged(self) -> None:
        value = {"a": ["tok-123"]}

        assert redact(value, {}) == {"a": ["tok-123"]}

    def test_input_is_not_mutated(self) -> None:
        value = {"a": ["tok-123"]}

        redact(value, {"T": "tok-123"})

        assert value == {"a": ["tok-123"]}
