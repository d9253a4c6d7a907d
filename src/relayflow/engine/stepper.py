"""The only traversal logic: run one node and say what happens next.

A node that throws (an undefined variable, a sandbox violation, a template over its time
or size cap, a bad date) becomes Fail with the exception, so the run is FAILED with the
raw error (any secret in it redacted) rather than crashing the worker.
"""

from __future__ import annotations

from dataclasses import replace

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.executors import EXECUTORS
from relayflow.engine.graph import WorkflowGraph
from relayflow.engine.outcome import EffectResult, Fail, HttpResult, Outcome
from relayflow.engine.redaction import MIN_BASE64_FORM, base64_forms, redact, secret_pattern


def _describe(exc: Exception, ctx: StepContext) -> str:
    """The raw error, naming the node field and the expression when a template raised it
    (`UndefinedError: body: 'dict object' has no attribute 'card_last4' in
    {{ contact.card_last4 }}`), with any secret it quotes (a request's URL or header)
    redacted."""
    text = f"{type(exc).__name__}: {templates.describe(exc)}"
    return str(redact(text, dict(ctx.secrets))) if ctx.secrets else text


def step(graph: WorkflowGraph, node_id: str, ctx: StepContext) -> Outcome:
    node = graph.nodes[node_id]
    try:
        return EXECUTORS[node.type].run(node, ctx)
    except Exception as exc:  # a node that throws fails the run; see module docstring
        return Fail(reason=_describe(exc, ctx), error_class=type(exc).__name__)


def resume(graph: WorkflowGraph, node_id: str, ctx: StepContext, result: EffectResult) -> Outcome:
    """Continue a node with its effect's result. An HTTP answer is redacted first: a server
    can echo a credential in its headers, body or error, and the node would otherwise
    capture it into the output bag or quote it in the run's error."""
    node = graph.nodes[node_id]
    if isinstance(result, HttpResult) and ctx.secrets:
        secrets = dict(ctx.secrets)
        result = replace(result, headers=redact(result.headers, secrets),
                         body=redact(result.body, secrets),
                         error=redact(result.error, secrets))
    try:
        return EXECUTORS[node.type].resume(node, ctx, result)
    except Exception as exc:
        return Fail(reason=_describe(exc, ctx), error_class=type(exc).__name__)


__all__ = ["MIN_BASE64_FORM", "base64_forms", "redact", "resume", "secret_pattern", "step"]
