"""The SMTP provider under the outbound policy, against real servers on 127.0.0.1.

The host is resolved once, every address is checked, and the connection goes to the
checked address: a DNS answer cannot change between the check and the connect. TLS
still verifies the host's name, not the address."""

from __future__ import annotations

import ipaddress
import re

import pytest

from relayflow.delivery.base import DeliveryError, OutboundMessage
from relayflow.delivery.config import parse
from relayflow.delivery.egress import AllowList, IPAddress
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.smtp import SmtpEmailProvider
from tests.support import smtpserver

LOOPBACK = ipaddress.ip_address("127.0.0.1")


def _message() -> OutboundMessage:
    return OutboundMessage(attempt_id="01a2-attempt", channel="email", to="ada@example.com",
                           subject="Hi", body="Hello", idempotency_key="k")


class Resolver:
    """Answers from a script, one answer per lookup, and counts the lookups."""

    def __init__(self, *answers: list[IPAddress]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, name: str, port: int) -> list[IPAddress]:
        self.calls.append(name)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _provider(host: str, port: int, guard: Guard, **over: object) -> SmtpEmailProvider:
    config = parse("email", {"type": "smtp", "host": host, "port": port, "tls": "none",
                             "from": "ops@relay.test", "timeout": 5, **over})
    return SmtpEmailProvider(config, password=None, guard=guard)  # type: ignore[arg-type]


@pytest.fixture
def sink():
    server = smtpserver.start()
    yield server
    server.close()


class TestRefused:
    @pytest.mark.parametrize(("host", "rule"), [("127.0.0.1", "loopback"),
                                                ("2130706433", "loopback"),
                                                ("localhost", "loopback")])
    def test_loopback_without_an_allow_list(self, sink, host, rule):
        with pytest.raises(DeliveryError) as caught:
            _provider(host, sink.port, Guard()).send(_message())
        assert not caught.value.retryable
        assert rule in str(caught.value)
        assert "RELAYFLOW_NETWORK_ALLOW" in str(caught.value)
        assert sink.raw == []

    def test_a_name_resolving_to_a_private_address(self):
        resolver = Resolver([ipaddress.ip_address("10.1.2.3")])
        refused = re.escape("resolves to 10.1.2.3, which is private")
        with pytest.raises(DeliveryError, match=refused):
            _provider("mail.example.test", 25, Guard(resolve=resolver)).send(_message())
        assert resolver.calls == ["mail.example.test"]

    def test_one_private_address_among_public_ones_is_enough(self):
        guard = Guard(resolve=Resolver([ipaddress.ip_address("8.8.8.8"),
                                        ipaddress.ip_address("192.168.0.4")]))
        with pytest.raises(DeliveryError, match=re.escape("192.168.0.4, which is private")):
            _provider("mail.example.test", 25, guard).send(_message())


class TestPinned:
    def test_resolved_once_and_connected_to_the_checked_address(self, sink):
        # A second lookup would answer an address nothing listens on.
        resolver = Resolver([LOOPBACK], [ipaddress.ip_address("127.0.0.9")])
        guard = Guard(allow=AllowList.parse("127.0.0.0/8"), resolve=resolver)
        _provider("mail.internal.test", sink.port, guard).send(_message())
        assert resolver.calls == ["mail.internal.test"]
        assert sink.envelopes == [("ops@relay.test", ["ada@example.com"])]

    def test_tls_checks_the_host_name_not_the_address(self, tmp_path):
        # The certificate covers localhost and 127.0.0.1, not other.test: connecting to
        # 127.0.0.1 under the name other.test must fail the certificate check.
        server = smtpserver.start(tmp_path, login=("ops", "pw"))
        try:
            guard = Guard(allow=AllowList.parse("127.0.0.0/8"), resolve=Resolver([LOOPBACK]))
            config = {"tls": "starttls", "username": "ops", "password_secret": "P",
                      "ca_file": server.ca_file}
            smtp = SmtpEmailProvider(parse("email", {  # type: ignore[arg-type]
                "type": "smtp", "host": "other.test", "port": server.port,
                "from": "ops@relay.test", **config}), password="pw", guard=guard)
            with pytest.raises(DeliveryError, match=r"CERTIFICATE_VERIFY_FAILED|hostname"):
                smtp.send(_message())
            named = SmtpEmailProvider(parse("email", {  # type: ignore[arg-type]
                "type": "smtp", "host": "localhost", "port": server.port,
                "from": "ops@relay.test", **config}), password="pw", guard=guard)
            named.send(_message())
            assert len(server.messages) == 1
        finally:
            server.close()
