"""The only traversal logic: run one node and say what happens next.

A node that throws (an undefined variable, a sandbox violation, a template over its time
or size cap, a bad date) becomes Fail with the exception, so the run is FAILED with the
raw error rather than crashing the worker.
"""

from __future__ import annotations

from relayflow.engine.context import StepContext
from relayflow.engine.executors import EXECUTORS
from relayflow.engine.graph import WorkflowGraph
from relayflow.engine.outcome import EffectResult, Fail, Outcome


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def step(graph: WorkflowGraph, node_id: str, ctx: StepContext) -> Outcome:
    node = graph.nodes[node_id]
    try:
        return EXECUTORS[node.type].run(node, ctx)
    except Exception as exc:  # a node that throws fails the run; see module docstring
        return Fail(reason=_describe(exc))


def resume(graph: WorkflowGraph, node_id: str, ctx: StepContext, result: EffectResult) -> Outcome:
    node = graph.nodes[node_id]
    try:
        return EXECUTORS[node.type].resume(node, ctx, result)
    except Exception as exc:
        return Fail(reason=_describe(exc))


def redact(value: object, secrets: dict[str, str] | list[str]) -> object:
    """Replace every secret value inside a JSON-like value (or string) with a marker."""
    named = secrets.items() if isinstance(secrets, dict) else [("secret", v) for v in secrets]
    pairs = sorted(((v, n) for n, v in named if v), key=lambda p: -len(p[0]))
    if not pairs:
        return value

    def scrub(item: object) -> object:
        if isinstance(item, str):
            for secret, name in pairs:
                if secret in item:
                    item = item.replace(secret, f"[secret:{name}]")
            return item
        if isinstance(item, dict):
            return {scrub(k): scrub(v) for k, v in item.items()}
        if isinstance(item, list):
            return [scrub(v) for v in item]
        return item

    return scrub(value)
