"""One overall deadline per SMTP call, against a real server that answers a byte at a time.

Every byte arrives well within the per-command timeout, so only the overall deadline
(Runtime.provider_timeout_seconds) ends the call. Before DATA the server cannot have the
message: a retryable failure. After DATA began it may: "outcome unknown", not retried."""

from __future__ import annotations

import time

import pytest

from relayflow.delivery.base import DeliveryError, OutboundMessage
from relayflow.delivery.config import parse
from relayflow.delivery.egress import AllowList
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.smtp import SmtpEmailProvider
from tests.support import trickle

DEADLINE = 1.5
# Generous for a loaded 2-core machine; the trickle alone would last 60 s.
BOUND = DEADLINE + 5.0
LOCAL = Guard(allow=AllowList.parse("127.0.0.0/8"))


def _message() -> OutboundMessage:
    return OutboundMessage(attempt_id="01a2-attempt", channel="email", to="ada@example.com",
                           subject="Hi", body="Hello", idempotency_key="k")


def _provider(port: int) -> SmtpEmailProvider:
    # timeout (per command) at its maximum: it is not what stops a trickling server.
    config = parse("email", {"type": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
                             "from": "ops@relay.test", "timeout": 120})
    return SmtpEmailProvider(config, password=None, guard=LOCAL,  # type: ignore[arg-type]
                             deadline=DEADLINE)


@pytest.fixture
def server(request):
    found = trickle.start(request.param, delay=0.1)
    yield found
    found.close()


class TestDeadline:
    @pytest.mark.parametrize("server", ["greeting"], indirect=True)
    def test_a_trickling_greeting_is_a_retryable_failure(self, server):
        began = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            _provider(server.port).send(_message())
        took = time.monotonic() - began
        assert took < BOUND, f"the call took {took:.1f} s"
        assert caught.value.retryable
        assert f"{DEADLINE:g} s deadline" in str(caught.value)
        assert b"DATA" not in bytes(server.received)

    @pytest.mark.parametrize("server", ["after_data"], indirect=True)
    def test_a_trickling_reply_after_data_is_outcome_unknown(self, server):
        began = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            _provider(server.port).send(_message())
        took = time.monotonic() - began
        assert took < BOUND, f"the call took {took:.1f} s"
        assert not caught.value.retryable
        assert "outcome unknown" in str(caught.value)
        assert caught.value.response["outcome"] == "unknown"
        assert b"\r\n.\r\n" in bytes(server.received)  # the message did go out
