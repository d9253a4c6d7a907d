"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it accepts.

`script` holds replies for the next DATA commands ("451 4.3.0 Try again later",
"550 5.1.1 No such user"); when empty, messages are accepted with 250. Optional
STARTTLS (self-signed certificate written to `ca_file`) and AUTH with one login.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relayflow.delivery.base import OutboundMessage
from relayflow.delivery.config import parse
from relayflow.delivery.egress import AllowList
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.smtp import SmtpEmailProvider


@dataclass
class SmtpSink:
    controller: Controller
    port: int
    ca_file: str | None
    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    # The envelope of each accepted message: MAIL FROM and every RCPT TO, as received.
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The client's (address, port) of each accepted message: one per connection it came on.
    peers: list[tuple[str, int]] = field(default_factory=list)

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]

    def close(self) -> None:
        self.controller.stop()


class _Handler:
    def __init__(self) -> None:
        self.sink: SmtpSink | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        sink = self.sink
        assert sink is not None
        with sink.lock:
            reply = sink.script.pop(0) if sink.script else "250 2.0.0 OK"
            if reply.startswith("250"):
                sink.raw.append(envelope.content)
                sink.peers.append(tuple(session.peer[:2]))
                sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return reply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def start(tmp_dir: Path | None = None, *, login: tuple[str, str] | None = None) -> SmtpSink:
    """Plain SMTP, or STARTTLS + AUTH when `login` is given (needs `tmp_dir` for the cert)."""
    handler = _Handler()
    port = _free_port()
    kwargs: dict[str, Any] = {}
    ca_file = None
    attempts: list[tuple[str, str]] = []
    if login is not None:
        assert tmp_dir is not None
        ca_file, key_file = _self_signed(tmp_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(ca_file, key_file)

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> AuthResult:
            if not isinstance(auth_data, LoginPassword):
                return AuthResult(success=False, handled=False)
            user, password = auth_data.login.decode(), auth_data.password.decode()
            attempts.append((user, password))
            return AuthResult(success=(user, password) == login, handled=False)

        kwargs = {"tls_context": context, "authenticator": authenticator,
                  "auth_require_tls": True, "require_starttls": True}
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            server_hostname="localhost", **kwargs)
    controller.start()
    sink = SmtpSink(controller, port, ca_file, auth_attempts=attempts)
    handler.sink = sink
    return sink


# Tests of the provider itself reach the sink on loopback, which the outbound guard
# refuses unless allowed.
LOCAL = Guard(allow=AllowList.parse("127.0.0.0/8,::1"))


def message(**over: object) -> OutboundMessage:
    """A plain email for ada@example.com; `over` replaces any field."""
    values = {"attempt_id": "01a2-attempt", "channel": "email", "to": "ada@example.com",
              "subject": "Welcome", "body": "Plain text body",
              "idempotency_key": "relayflow-attempt-01a2", **over}
    return OutboundMessage(**values)  # type: ignore[arg-type]


def provider(port: int, **over: object) -> SmtpEmailProvider:
    """The real SMTP provider pointed at a sink on 127.0.0.1, plain text, no login."""
    data = {"type": "smtp", "host": "127.0.0.1", "port": port, "tls": "none",
            "from": "ops@relay.test", **over}
    return SmtpEmailProvider(parse("email", data), password=None,  # type: ignore[arg-type]
                             guard=LOCAL)
