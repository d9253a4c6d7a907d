from __future__ import annotations

from datetime import UTC, datetime

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.durations import parse_duration
from relayflow.engine.executors.base import NoEffect
from relayflow.engine.graph import Node
from relayflow.engine.outcome import Outcome, WaitUntil


class WaitExecutor(NoEffect):
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        if "duration" in node.config:
            until = ctx.now + parse_duration(node.config["duration"])
        else:
            text = templates.render(node.config["until"], ctx.variables(), field="until").strip()
            until = datetime.fromisoformat(text)
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
        return WaitUntil(until=until, next=node.config["next"], output={"until": until.isoformat()})
