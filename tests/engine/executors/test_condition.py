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

        assert outcome == Advance(next="lookup", branch="then", output={
            "result": True, "seen": {"contact.plan": "pro"}})

    def test_false_takes_else_and_records_the_branch(self) -> None:
        outcome = step(GRAPH, "check", make_ctx(contact={**CONTACT, "plan": "free"}))

        assert outcome == Advance(next="welcome", branch="else", output={
            "result": False, "seen": {"contact.plan": "free"}})

    def test_reads_earlier_step_output(self) -> None:
        outcome = step(GRAPH, "tiered", make_ctx(steps={"lookup": {"tier": "gold"}}))

        assert isinstance(outcome, Advance)
        assert (outcome.next, outcome.branch) == ("vip", "then")

    def test_missing_variable_fails_instead_of_taking_else(self) -> None:
        outcome = step(GRAPH, "tiered", make_ctx(steps={}))

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: when: 'dict object' has no attribute "
                                  "'lookup' in steps.lookup.tier in ['gold', 'platinum']")


WATCHED = graph_of({
    "big": {"type": "CONDITION", "then": "a", "else": "b",
            "when": "contact.plan == 'pro' and event.amount > 100 "
                    "and steps.lookup['tier'] is defined and range(3) | length"},
    "wide": {"type": "CONDITION", "then": "a", "else": "b",
             "when": " or ".join(f"event.f{i} == 1" for i in range(25))},
    "long": {"type": "CONDITION", "then": "a", "else": "b",
             "when": "contact.bio != '' and event.tags | length > 0"},
    "token": {"type": "CONDITION", "then": "a", "else": "b",
              "when": "event.token != ''"},
})


class TestSeen:
    """A CONDITION step records what its expression read, for the run page."""

    def test_records_each_variable_path_with_its_value(self) -> None:
        outcome = step(WATCHED, "big", make_ctx(contact={**CONTACT, "plan": "pro"},
                                                event={"amount": 120}, steps={}))

        assert isinstance(outcome, Advance)
        assert outcome.output == {
            "result": False, "seen": {"contact.plan": "pro", "event.amount": 120},
            "undefined": ["steps.lookup.tier"]}  # range is a global, not a variable

    def test_at_most_twenty_names_and_the_rest_counted(self) -> None:
        event = {f"f{i}": 0 for i in range(25)}
        outcome = step(WATCHED, "wide", make_ctx(event=event))

        assert isinstance(outcome, Advance)
        assert list(outcome.output["seen"]) == [f"event.f{i}" for i in range(20)]
        assert outcome.output["seen_omitted"] == 5

    def test_a_long_value_is_cut_to_two_hundred_characters(self) -> None:
        outcome = step(WATCHED, "long", make_ctx(contact={**CONTACT, "bio": "x" * 5000},
                                                 event={"tags": list(range(1000))}))

        assert isinstance(outcome, Advance)
        bio, items = outcome.output["seen"]["contact.bio"], outcome.output["seen"]["event.tags"]
        assert bio == "x" * 199 + "…"
        assert items.startswith("[0, 1, 2")
        assert items.endswith("…")
        assert len(items) == 200

    def test_a_secret_value_it_saw_is_redacted(self) -> None:
        ctx = make_ctx(event={"token": "s3cr3t-value-123"},
                       secrets={"CRM_TOKEN": "s3cr3t-value-123"})
        outcome = step(WATCHED, "token", ctx)

        assert isinstance(outcome, Advance)
        assert outcome.output["seen"] == {"event.token": "[secret:CRM_TOKEN]"}
