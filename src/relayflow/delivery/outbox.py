"""The embedded default: the attempt row itself is the stored message; nothing leaves."""

from __future__ import annotations

from relayflow.delivery.base import OutboundMessage, SendResult


class OutboxProvider:
    name = "outbox"

    def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(
            provider_message_id=f"outbox-{message.attempt_id}",
            response={"stored": True, "detail": "kept in the outbox; not sent anywhere"},
        )
