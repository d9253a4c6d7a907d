"""The embedded default: the attempt row itself is the stored message; nothing leaves."""

from __future__ import annotations

from relayflow.delivery import envelope
from relayflow.delivery.base import OutboundMessage, SendResult


class OutboxProvider:
    name = "outbox"

    def send(self, message: OutboundMessage) -> SendResult:
        # Held to the same rules as a real provider, so switching to one changes nothing.
        envelope.check(channel=message.channel, to=message.to, subject=message.subject,
                       headers=message.headers)
        return SendResult(
            provider_message_id=f"outbox-{message.attempt_id}",
            response={"stored": True, "detail": "kept in the outbox; not sent anywhere"},
        )
