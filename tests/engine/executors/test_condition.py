from __future__ import annotations

from relayflow.engine.outcome import Advance, Fail
from relayflow.engine.stepper import step
from tests.engine.builders import CONTACT, graph_of, make_ctx

GRAPH = graph_of({
    "check": {"type": "CONDITION", "when": "contact.plan == 'pro'", "then": "lookup",
              "else": "welcome"},
    "tiered": {"type": "CONDITION", "when": "steps.lookup.tier in ['gold', 'platinum']",
               "then": "vip", "else": "welcome"},
})


class TestStep:
    def test_true_takes_then_and_records_the_branch(self) -> None:
        outcome = step(GRAPH, "check", make_ctx(contact={**CONTACT, "plan": "pro"}))

        assert outcome == Advance(next="lookup", branch="then", output={"result": True})

    def test_false_takes_else_and_records_the_branch(self) -> None:
        outcome = step(GRAPH, "check", make_ctx(contact={**CONTACT, "plan": "free"}))

        assert outcome == Advance(next="welcome", branch="else", output={"result": False})

    def test_reads_earlier_step_output(self) -> None:
        outcome = step(GRAPH, "tiered", make_ctx(steps={"lookup": {"tier": "gold"}}))

        assert isinstance(outcome, Advance)
        assert (outcome.next, outcome.branch) == ("vip", "then")

    def test_missing_variable_fails_instead_of_taking_else(self) -> None:
        outcome = step(GRAPH, "tiered", make_ctx(steps={}))

        assert isinstance(outcome, Fail)
        assert "UndefinedError" in outcome.reason
