from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.graph import Node
from relayflow.engine.outcome import (
    Advance,
    EffectResult,
    Fail,
    HttpCall,
    HttpResult,
    Outcome,
    Perform,
)


def _render_request(request: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "method": str(request.get("method", "GET")).upper(),
        "url": templates.render(request["url"], variables, field="request.url"),
        "headers": {
            k: templates.render(v, variables, field=f"request.headers.{k}")
            for k, v in request.get("headers", {}).items()
        },
        "body": templates.render_value(request.get("body"), variables, field="request.body"),
    }


def resolve_path(data: Any, path: str) -> Any:
    """Follow `body.account.tier` / `body.items.0.id`; a missing segment gives None."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part, current.get(part.lower()) if part.lower() != part else None)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


class IntegrationExecutor:
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        request = node.config["request"]
        sent = _render_request(request, ctx.request_variables(real=True))
        stored = _render_request(request, ctx.request_variables(real=False))
        return Perform(
            effect=HttpCall(
                method=sent["method"],
                url=sent["url"],
                headers=sent["headers"],
                body=sent["body"],
                timeout=float(node.config.get("timeout", 10)),
                retries=int(node.config.get("retries", 0)),
                stored=stored,
            )
        )

    def resume(self, node: Node, ctx: StepContext, result: EffectResult) -> Outcome:
        assert isinstance(result, HttpResult)
        ok = result.error is None and result.status is not None and 200 <= result.status < 300
        if not ok:
            reason = result.error or f"HTTP {result.status}"
            output: dict[str, Any] = {"status": result.status, "error": reason,
                                      "attempts": result.attempts}
            if "on_error" in node.config:
                return Advance(next=node.config["on_error"], branch="on_error", output=output)
            return Fail(reason=f"request failed after {result.attempts} attempt(s): {reason}",
                        error_class=result.error_class or f"HTTP {result.status}",
                        output=output)
        response = {"status": result.status, "headers": result.headers, "body": result.body}
        captured = {
            name: resolve_path(response, path)
            for name, path in (node.config.get("capture") or {}).items()
        }
        return Advance(next=node.config["next"], branch="next",
                       output={**captured, "status": result.status})
