from __future__ import annotations

from relayflow.engine import templates
from relayflow.engine.context import StepContext
from relayflow.engine.graph import Node
from relayflow.engine.outcome import (
    Advance,
    EffectResult,
    Fail,
    Outcome,
    Perform,
    SendMessage,
    SendResult,
)

_ADDRESS_FIELD = {"email": "email", "sms": "phone"}
# A message that finally fails does not stop the contact's journey (as in Customer.io and
# Braze): the step records the failure and Delivery ops shows it. `on_failure: fail` stops.
ON_FAILURE_DEFAULT = "continue"


class SendMessageExecutor:
    def run(self, node: Node, ctx: StepContext) -> Outcome:
        cfg = node.config
        channel = cfg["channel"]
        unsubscribe_url = ctx.unsubscribe_urls.get(channel, "")
        variables = {**ctx.variables(), "unsubscribe_url": unsubscribe_url}
        if "to" in cfg:
            to = templates.render(cfg["to"], variables, field="to").strip()
        else:
            to = str((ctx.contact or {}).get(_ADDRESS_FIELD[channel]) or "")
        if not to:
            return Fail(reason=f"no {_ADDRESS_FIELD[channel]} address to send the {channel} to",
                        error_class="NoAddress", output={"reason": "no_address"})
        message = SendMessage(
            channel=channel,
            to=to,
            subject=templates.render(cfg.get("subject", ""), variables, field="subject"),
            body=templates.render(cfg["body"], variables, field="body"),
            html=templates.render(cfg["html"], variables, field="html") if "html" in cfg else None,
            unsubscribe_url=unsubscribe_url or None,
            on_failure=cfg.get("on_failure", ON_FAILURE_DEFAULT),
        )
        return Perform(effect=message)

    def resume(self, node: Node, ctx: StepContext, result: EffectResult) -> Outcome:
        assert isinstance(result, SendResult)
        output = {"delivery_attempt_id": result.attempt_id, "status": result.status}
        if result.error:
            output["error"] = result.error
        if result.error and node.config.get("on_failure", ON_FAILURE_DEFAULT) == "fail":
            return Fail(reason=f"delivery failed: {result.error}", error_class="DeliveryFailed",
                        output=output)
        return Advance(next=node.config["next"], output=output)
