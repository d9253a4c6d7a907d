from __future__ import annotations

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.executors.base import NoEffect
from relayflow.engine.graph import Node
from relayflow.engine.outcome import Advance, Fail, Outcome


class UpdateContactExecutor(NoEffect):
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        if ctx.contact is None:
            return Fail(reason="this run has no contact to update", error_class="NoContact")
        values = templates.render_value(dict(node.config["set"]), ctx.variables(),
                                        field="set")
        return Advance(next=node.config["next"], output={"set": values}, contact_set=values)
