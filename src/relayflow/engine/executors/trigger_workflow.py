from __future__ import annotations

from relayflow.engine.context import StepContext
from relayflow.engine.graph import Node
from relayflow.engine.outcome import (
    Advance,
    EffectResult,
    Fail,
    Outcome,
    Perform,
    StartResult,
    StartRun,
)


class TriggerWorkflowExecutor:
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        return Perform(effect=StartRun(workflow=node.config["workflow"]))

    def resume(self, node: Node, ctx: StepContext, result: EffectResult) -> Outcome:
        assert isinstance(result, StartResult)
        if result.error or result.run_id is None:
            return Fail(reason=result.error or "the upstream workflow did not start",
                        error_class="TriggerRefused")
        output = {"workflow": node.config["workflow"], "run_id": result.run_id}
        return Advance(next=node.config["next"], output=output)
