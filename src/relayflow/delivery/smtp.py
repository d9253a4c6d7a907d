"""Email over real SMTP (aiosmtplib), with STARTTLS or implicit TLS and AUTH.

The Message-ID is derived from the attempt id, so a message and its attempt row can
always be matched, in the sink's logs as in the recipient's headers.
"""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from relayflow.delivery.base import DeliveryError, OutboundMessage, SendResult
from relayflow.delivery.config import SmtpConfig


def message_id(attempt_id: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1].strip(">") or "relayflow.invalid"
    return f"<{attempt_id}@{domain}>"


def build_email(message: OutboundMessage, *, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = message_id(message.attempt_id, sender)
    for name, value in message.headers.items():
        email[name] = value
    email.set_content(message.body)
    if message.html:
        email.add_alternative(message.html, subtype="html")
    return email


class SmtpEmailProvider:
    name = "smtp"

    def __init__(self, config: SmtpConfig, *, password: str | None) -> None:
        self.config = config
        self._password = password

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls == "none":
            return None
        return ssl.create_default_context(cafile=self.config.ca_file)

    def send(self, message: OutboundMessage) -> SendResult:
        email = build_email(message, sender=self.config.from_)
        cfg = self.config
        try:
            _, reply = asyncio.run(aiosmtplib.send(
                email, hostname=cfg.host, port=cfg.port, username=cfg.username or None,
                password=self._password if cfg.username else None,
                use_tls=cfg.tls == "tls", start_tls=cfg.tls == "starttls",
                tls_context=self._tls_context(), timeout=cfg.timeout,
            ))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            raise _refused(first.code, first.message) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryError(f"SMTP server unreachable: {type(exc).__name__}: {exc}",
                                retryable=True, response={"error": str(exc)}) from exc
        return SendResult(provider_message_id=str(email["Message-ID"]),
                          response={"reply": reply})


def _refused(code: int, text: str) -> DeliveryError:
    """4xx is a temporary refusal (retry later); 5xx is permanent."""
    return DeliveryError(f"SMTP {code} {text}".strip(), retryable=400 <= code < 500,
                         response={"code": code, "message": text})
