from __future__ import annotations

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.executors.base import NoEffect
from relayflow.engine.graph import Node
from relayflow.engine.outcome import Advance, Outcome


class ConditionExecutor(NoEffect):
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        result = bool(templates.evaluate(node.config["when"], ctx.variables(), field="when"))
        branch = "then" if result else "else"
        return Advance(next=node.config[branch], branch=branch, output={"result": result})
