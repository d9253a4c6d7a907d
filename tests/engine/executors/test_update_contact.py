from __future__ import annotations

from relayflow.engine.outcome import Advance, Fail
from relayflow.engine.stepper import step
from tests.engine.builders import CONTACT, graph_of, make_ctx

GRAPH = graph_of({
    "update": {"type": "UPDATE_CONTACT", "next": "done", "set": {
        "tier": "{{ steps.lookup.tier }}",
        "greeting": "Hi {{ contact.first_name }}",
        "tags": ["{{ contact.plan }}", "onboarded"],
        "score": 10,
    }},
})


class TestStep:
    def test_renders_set_into_contact_set(self) -> None:
        outcome = step(GRAPH, "update", make_ctx(steps={"lookup": {"tier": "gold"}}))

        expected = {"tier": "gold", "greeting": "Hi Ada", "tags": ["pro", "onboarded"],
                    "score": 10}
        assert outcome == Advance(next="done", output={"set": expected}, contact_set=expected)

    def test_does_not_change_the_contact_itself(self) -> None:
        ctx = make_ctx(steps={"lookup": {"tier": "gold"}})

        step(GRAPH, "update", ctx)

        assert ctx.contact == CONTACT

    def test_run_without_contact_fails(self) -> None:
        outcome = step(GRAPH, "update", make_ctx(contact=None, steps={"lookup": {"tier": "x"}}))

        assert outcome == Fail(reason="this run has no contact to update",
                                      error_class="NoContact")

    def test_missing_variable_fails(self) -> None:
        outcome = step(GRAPH, "update", make_ctx(steps={}))

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: set.tier: 'dict object' has no attribute "
                                  "'lookup' in {{ steps.lookup.tier }}")
