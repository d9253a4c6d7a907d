"""The self-reach check behind the save/activate warning: pure, on a map of who triggers whom."""

from __future__ import annotations

from relayflow.engine.validation import trigger_cycle, trigger_targets


class TestTriggerTargets:
    def test_lists_the_keys_trigger_workflow_nodes_start(self) -> None:
        definition = {"nodes": {
            "a": {"type": "TRIGGER_WORKFLOW", "workflow": "x", "next": "b"},
            "b": {"type": "TRIGGER_WORKFLOW", "workflow": "y", "next": "c"},
            "c": {"type": "SEND_MESSAGE", "workflow": "not-a-trigger"},
            "d": "not a node"}}

        assert trigger_targets(definition) == {"x", "y"}

    def test_a_definition_without_nodes_starts_nothing(self) -> None:
        assert trigger_targets({"nodes": "nope"}) == set()


class TestTriggerCycle:
    def test_direct_self_trigger(self) -> None:
        assert trigger_cycle("a", {"a": {"a", "b"}}) == ["a", "a"]

    def test_through_another_workflow(self) -> None:
        assert trigger_cycle("a", {"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]

    def test_the_shortest_chain_is_named(self) -> None:
        targets = {"a": {"b", "x"}, "b": {"c"}, "c": {"d"}, "d": {"a"}, "x": {"a"}}

        assert trigger_cycle("a", targets) == ["a", "x", "a"]

    def test_a_cycle_that_does_not_come_back_is_not_this_workflow_s(self) -> None:
        assert trigger_cycle("a", {"a": {"b"}, "b": {"c"}, "c": {"b"}}) is None

    def test_unknown_targets_end_the_search(self) -> None:
        assert trigger_cycle("a", {"a": {"ghost"}}) is None

    def test_a_long_chain_is_followed_to_its_end(self) -> None:
        chain = {f"w{i}": {f"w{i + 1}"} for i in range(2000)} | {"w2000": {"w0"}}

        found = trigger_cycle("w0", chain)

        assert found is not None
        assert (len(found), found[0], found[-1]) == (2002, "w0", "w0")
