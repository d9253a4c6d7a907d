from __future__ import annotations

from collections import Counter

from relayflow.engine.outcome import Advance
from relayflow.engine.stepper import step
from tests.engine.builders import graph_of, make_ctx

GRAPH = graph_of({
    "ab": {"type": "SPLIT", "branches": [{"weight": 3, "next": "variant_a"},
                                         {"weight": 1, "next": "variant_b"}]},
    "named": {"type": "SPLIT", "branches": [{"weight": 1, "next": "a", "name": "control"},
                                            {"weight": 1, "next": "b", "name": "treatment"}]},
})


def _next(node_id: str, run_id: str) -> str:
    outcome = step(GRAPH, node_id, make_ctx(run_id=run_id))
    assert isinstance(outcome, Advance)
    return outcome.next


class TestStep:
    def test_same_run_id_always_takes_the_same_branch(self) -> None:
        for i in range(200):
            run_id = f"run-{i}"
            assert len({_next("ab", run_id) for _ in range(3)}) == 1, run_id

    def test_branches_follow_the_weights_across_runs(self) -> None:
        counts = Counter(_next("ab", f"01J{i:08d}") for i in range(4000))

        assert set(counts) == {"variant_a", "variant_b"}
        share = counts["variant_a"] / 4000
        assert 0.71 < share < 0.79, counts

    def test_branch_is_recorded_by_index(self) -> None:
        outcome = step(GRAPH, "ab", make_ctx(run_id="run-7"))

        assert isinstance(outcome, Advance)
        index = ["variant_a", "variant_b"].index(outcome.next)
        assert outcome.branch == f"branch {index}"
        assert outcome.output == {"branch": f"branch {index}"}

    def test_named_branch_is_recorded_by_name(self) -> None:
        labels = set()
        for i in range(50):
            outcome = step(GRAPH, "named", make_ctx(run_id=f"run-{i}"))
            assert isinstance(outcome, Advance)
            assert outcome.branch == {"a": "control", "b": "treatment"}[outcome.next]
            labels.add(outcome.branch)

        assert labels == {"control", "treatment"}
