from __future__ import annotations

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.executors.base import NoEffect
from relayflow.engine.graph import Node
from relayflow.engine.outcome import Advance, Outcome
from relayflow.engine.redaction import redact


class ConditionExecutor(NoEffect):
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        when = node.config["when"]
        variables = ctx.variables()
        result = bool(templates.evaluate(when, variables, field="when"))
        branch = "then" if result else "else"
        # The values the expression read, so the run page can say why this branch.
        seen = templates.seen(when, variables)
        if seen["seen"] and ctx.secrets:
            seen = redact(seen, dict(ctx.secrets))
        return Advance(next=node.config[branch], branch=branch, output={"result": result, **seen})
