from __future__ import annotations

import hashlib

from relayflow.engine.context import StepContext
from relayflow.engine.executors.base import NoEffect
from relayflow.engine.graph import Node
from relayflow.engine.outcome import Advance, Outcome


class SplitExecutor(NoEffect):
    """Weighted A/B split, deterministic per run and node so a resumed run takes the same path."""

    def run(self, node: Node, ctx: StepContext) -> Outcome:
        branches = node.config["branches"]
        total = sum(float(b["weight"]) for b in branches)
        digest = hashlib.sha256(f"{ctx.run['id']}:{node.id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * total
        for index, branch in enumerate(branches):
            point -= float(branch["weight"])
            if point < 0 or index == len(branches) - 1:
                label = str(branch.get("name") or f"branch {index}")
                return Advance(next=branch["next"], branch=label, output={"branch": label})
        raise AssertionError("unreachable")
