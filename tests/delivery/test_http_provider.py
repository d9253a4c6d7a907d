"""HttpMessageProvider against a real HTTP provider app on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from relayflow.delivery.base import DeliveryError, OutboundMessage
from relayflow.delivery.config import HttpConfig, parse
from relayflow.delivery.egress import AllowList
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.http_provider import HttpMessageProvider

TOKEN = "sms_live_token_93e1c0"
LOOPBACK = Guard(allow=AllowList.parse("127.0.0.0/8"))  # the test provider listens there


def _message(key: str = "relayflow-attempt-1") -> OutboundMessage:
    return OutboundMessage(attempt_id="att-1", channel="sms", to="+14155550123", subject="",
                           body="Your code is 4242", idempotency_key=key)


def _provider(url: str, **over: object) -> HttpMessageProvider:
    data = {"type": "http", "url": url, "auth_header_secret": "SMS_TOKEN",
            "body": {"to": "{{ to }}", "text": "{{ body }}", "ref": "{{ attempt_id }}"},
            "message_id_path": "body.id", **over}
    config = parse("sms", data)
    assert isinstance(config, HttpConfig)
    return HttpMessageProvider(config, token=TOKEN, guard=LOOPBACK)


class TestSend:
    def test_sends_the_rendered_body_with_auth_and_idempotency_key(self, http_server):
        result = _provider(f"{http_server.url}/messages").send(_message())
        [request] = http_server.requests
        assert json.loads(request.body) == {"to": "+14155550123", "text": "Your code is 4242",
                                            "ref": "att-1"}
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Idempotency-Key"] == "relayflow-attempt-1"
        assert result.provider_message_id == "msg-1"
        assert result.response["status"] == 201

    def test_a_repeat_with_the_same_key_is_not_delivered_twice(self, http_server):
        provider = _provider(f"{http_server.url}/messages")
        first = provider.send(_message())
        again = provider.send(_message())
        assert first.provider_message_id == again.provider_message_id == "msg-1"
        assert len(http_server.delivered) == 1

    @pytest.mark.parametrize("status", [429, 500, 503])
    def test_throttling_and_server_errors_are_retryable(self, http_server, status):
        with pytest.raises(DeliveryError) as caught:
            _provider(f"{http_server.url}/status/{status}").send(_message())
        assert caught.value.retryable
        assert caught.value.response["status"] == status

    @pytest.mark.parametrize("status", [400, 401, 404, 422])
    def test_client_errors_are_permanent(self, http_server, status):
        with pytest.raises(DeliveryError) as caught:
            _provider(f"{http_server.url}/status/{status}").send(_message())
        assert not caught.value.retryable

    def test_provider_down_is_retryable(self):
        with pytest.raises(DeliveryError) as caught:
            _provider("http://127.0.0.1:9/messages", timeout=2).send(_message())
        assert caught.value.retryable

    def test_custom_header_without_scheme(self, http_server):
        _provider(f"{http_server.url}/messages", auth_header="X-Api-Key",
                  auth_scheme=None).send(_message())
        assert http_server.requests[0].headers["X-Api-Key"] == TOKEN


class TestConfig:
    def test_every_problem_is_listed(self):
        from relayflow.delivery.config import ConfigError

        with pytest.raises(ConfigError) as caught:
            parse("email", {"type": "smtp", "port": 70000, "tls": "ssl", "username": "u",
                            "password_secret": "not a name!", "extra": 1})
        problems = " | ".join(caught.value.problems)
        for needle in ("unknown field 'extra'", "host is required", "port must be",
                       "tls must be", "from must be", "password_secret must name"):
            assert needle in problems

    def test_sms_cannot_use_smtp(self):
        from relayflow.delivery.config import ConfigError

        with pytest.raises(ConfigError, match="type must be one of outbox, http for sms"):
            parse("sms", {"type": "smtp"})
