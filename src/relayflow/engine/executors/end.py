from __future__ import annotations

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.executors.base import NoEffect
from relayflow.engine.graph import Node
from relayflow.engine.outcome import Fail, Finish, Outcome


class EndExecutor(NoEffect):
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        return Finish()


class StopErrorExecutor(NoEffect):
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        message = templates.render(node.config.get("message", "stopped"), ctx.variables(),
                                   field="message")
        return Fail(reason=message, error_class="StopError", output={"message": message})
