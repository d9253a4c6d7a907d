from __future__ import annotations

from relayflow.engine.outcome import Advance, Fail, Perform, StartResult, StartRun
from relayflow.engine.stepper import resume, step
from tests.engine.builders import graph_of, make_ctx

GRAPH = graph_of({"child": {"type": "TRIGGER_WORKFLOW", "workflow": "billing", "next": "done"}})


class TestStep:
    def test_asks_to_start_the_other_workflow(self) -> None:
        assert step(GRAPH, "child", make_ctx()) == Perform(effect=StartRun(workflow="billing"))


class TestResume:
    def test_started_run_advances_with_its_id(self) -> None:
        outcome = resume(GRAPH, "child", make_ctx(), StartResult(run_id="run-child-1"))

        assert outcome == Advance(next="done",
                                  output={"workflow": "billing", "run_id": "run-child-1"})

    def test_error_fails_with_the_error(self) -> None:
        result = StartResult(run_id=None, error="workflow 'billing' is INACTIVE")

        outcome = resume(GRAPH, "child", make_ctx(), result)

        assert outcome == Fail(reason="workflow 'billing' is INACTIVE",
                                      error_class="TriggerRefused")

    def test_no_run_id_and_no_error_fails(self) -> None:
        outcome = resume(GRAPH, "child", make_ctx(), StartResult(run_id=None))

        assert isinstance(outcome, Fail)
        assert "did not start" in outcome.reason
