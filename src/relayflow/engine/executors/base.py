"""The shape every node executor has."""

from __future__ import annotations

from typing import Protocol

from relayflow.engine.context import StepContext
from relayflow.engine.graph import Node
from relayflow.engine.outcome import EffectResult, Outcome


class NodeExecutor(Protocol):
    """Runs one node type. `run` may return Perform; then `resume` gets the effect's result."""

    def run(self, node: Node, ctx: StepContext) -> Outcome: ...

    def resume(self, node: Node, ctx: StepContext, result: EffectResult) -> Outcome: ...


class NoEffect:
    """Base for executors that never ask for a side effect."""

    def resume(self, node: Node, ctx: StepContext, result: EffectResult) -> Outcome:
        raise TypeError(f"{node.type} performs no side effect to resume")
