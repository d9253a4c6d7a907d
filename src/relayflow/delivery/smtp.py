"""Email over real SMTP (aiosmtplib), with STARTTLS or implicit TLS and AUTH.

The Message-ID is derived from the attempt id, so a message and its attempt row can
always be matched, in the sink's logs as in the recipient's headers.

Three rules keep one message or one server from doing harm:
- the message is checked first (envelope.py): one recipient, no control character in any
  header; the envelope names exactly that one recipient, whatever the headers say;
- the server is reached under the egress policy (egress.py), like INTEGRATION requests and
  the HTTP provider: the host is resolved once, every address must be public or allowed,
  and the connection goes to a vetted address while TLS still checks the host's name;
- one overall deadline bounds the whole call (connect, TLS, every command), so a server
  that answers a byte a second cannot hold a worker. Past the start of DATA the server
  may have the message: a failure there is "outcome unknown", never retried.

Connections are kept open and reused (`_Connections`): one event loop per process runs
every SMTP conversation; a connection goes back to the pool after a message was accepted,
is reset (RSET) before the next one, is dropped after any error, and is closed after
IDLE_SECONDS without use. Its key holds everything it was opened with (server, TLS,
login, the egress policy), so a changed configuration opens new connections.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Hashable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiosmtplib

from relayflow.delivery import egress, envelope, mime
from relayflow.delivery.base import DeliveryError, OutboundMessage, SendResult
from relayflow.delivery.config import SmtpConfig
from relayflow.delivery.egress import IPAddress, Refused, Target
from relayflow.delivery.guarded_http import Guard, resolve_target

DEFAULT_DEADLINE = 30.0
IDLE_SECONDS = 10.0  # an unused connection is closed after this
UNKNOWN = ("delivery outcome unknown: {why} after the message data began, so the SMTP "
           "server may have accepted it; it is not sent again, to avoid a duplicate. Resend "
           "it if it did not arrive.")


def message_id(attempt_id: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1].strip(">") or "relayflow.invalid"
    return f"<{attempt_id}@{domain}>"


def build_email(message: OutboundMessage, *, sender: str) -> bytes:
    """The message as it goes over the wire (see mime.py for why it is written directly)."""
    fields = [("From", sender), ("To", message.to), ("Subject", message.subject),
              # +0000, a time in UTC: formatdate's -0000 says the zone is unknown
              # (RFC 5322 §3.3), and strict parsers read it as a time without one.
              ("Date", format_datetime(datetime.now(UTC))),
              ("Message-ID", message_id(message.attempt_id, sender)),
              *message.headers.items()]
    return mime.build(fields, text=message.body, html=message.html)


class _Client(aiosmtplib.SMTP):
    """Remembers whether DATA began: from then on the server may hold the message."""

    data_started = False

    async def data(self, message: str | bytes, /, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        self.data_started = True
        return await super().data(message, **kwargs)


class SmtpEmailProvider:
    name = "smtp"

    def __init__(self, config: SmtpConfig, *, password: str | None,
                 guard: Guard | None = None, deadline: float = DEFAULT_DEADLINE) -> None:
        self.config = config
        self._password = password
        # No guard given: the default policy (private and loopback targets refused).
        self._guard = guard or Guard()
        self._deadline = deadline

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls == "none":
            return None
        return _tls_context(self.config.ca_file)

    def _key(self) -> Hashable:
        cfg = self.config
        return (cfg.host, cfg.port, cfg.tls, cfg.ca_file, cfg.username, self._password,
                cfg.timeout, self._guard.allow)

    def send(self, message: OutboundMessage) -> SendResult:
        cfg = self.config
        envelope.check(channel="email", to=message.to, subject=message.subject,
                       headers=message.headers, sender=cfg.from_)
        recipient = envelope.email_address(message.to)
        sender = envelope.email_address(cfg.from_, field="from")
        try:
            email = build_email(message, sender=cfg.from_)
        except ValueError as exc:  # a header with a word longer than a line may be
            raise envelope.InvalidMessage(f"the message cannot be built: {exc}") from exc
        addresses = vetted_addresses(cfg.host, cfg.port, self._guard)
        used: list[_Client] = []
        try:
            reply = CONNECTIONS.run(self._deliver(addresses, email, sender, recipient, used))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            raise _refused(first.code, first.message) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _refused(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            started = bool(used) and used[-1].data_started
            raise self._failure(exc, data_started=started) from exc
        return SendResult(provider_message_id=message_id(message.attempt_id, cfg.from_),
                          response={"reply": reply})

    def _client(self) -> _Client:
        cfg = self.config
        return _Client(hostname=cfg.host, username=cfg.username or None,
                       password=self._password if cfg.username else None,
                       use_tls=cfg.tls == "tls", start_tls=cfg.tls == "starttls",
                       tls_context=self._tls_context(), timeout=cfg.timeout)

    async def _deliver(self, addresses: Sequence[IPAddress], email: bytes,
                       sender: str, recipient: str, used: list[_Client]) -> str:
        key = self._key()
        async with asyncio.timeout(self._deadline):
            client = await CONNECTIONS.take(key)
            if client is None:
                client = self._client()
                used.append(client)
                try:
                    client.sock = await _connect(addresses, self.config.port,
                                                 self.config.timeout)
                    await client.connect()
                except BaseException:
                    client.close()
                    raise
            else:
                used.append(client)
            client.data_started = False
            try:
                # Only a non-ASCII address needs the server's SMTPUTF8.
                options = [] if email.isascii() else ["SMTPUTF8"]
                _, reply = await client.sendmail(sender, [recipient], email,
                                                 mail_options=options)
            except BaseException:
                client.close()
                raise
        CONNECTIONS.give(key, client)
        return reply

    def _failure(self, exc: BaseException, *, data_started: bool) -> DeliveryError:
        overall = isinstance(exc, TimeoutError) and not isinstance(exc, aiosmtplib.SMTPException)
        why = (f"the SMTP call passed its {self._deadline:g} s deadline" if overall
               else f"{type(exc).__name__}: {exc}")
        if data_started:
            return DeliveryError(UNKNOWN.format(why=why), retryable=False,
                                 response={"error": why, "outcome": "unknown"})
        if overall:
            return DeliveryError(f"SMTP server too slow: {why}", retryable=True,
                                 response={"error": why})
        return DeliveryError(f"SMTP server unreachable: {why}", retryable=True,
                             response={"error": str(exc)})


@functools.cache
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    """One TLS context per CA file for the process (loading a CA bundle is slow)."""
    return ssl.create_default_context(cafile=ca_file)


class _Connections:
    """Open SMTP connections by key, on one event loop thread for the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[Hashable, list[tuple[_Client, float]]] = {}

    def run(self, work: Coroutine[Any, Any, str]) -> str:
        """Run one conversation on the pool's loop and wait for its answer."""
        return asyncio.run_coroutine_threadsafe(work, self._running()).result()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="relayflow-smtp",
                                 daemon=True).start()
                loop.call_soon_threadsafe(self._reap_later, loop)
                self._loop = loop
            return self._loop

    async def take(self, key: Hashable) -> _Client | None:
        """An idle connection for `key` that answers a reset, or None."""
        idle = self._idle.get(key, [])
        while idle:
            client, _ = idle.pop()
            if not client.is_connected:
                continue
            try:
                await client.rset()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
                continue
            return client
        return None

    def give(self, key: Hashable, client: _Client) -> None:
        if client.is_connected:
            self._idle.setdefault(key, []).append((client, time.monotonic()))

    def _reap_later(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_later(IDLE_SECONDS / 2, self._reap, loop)

    def _reap(self, loop: asyncio.AbstractEventLoop) -> None:
        cutoff = time.monotonic() - IDLE_SECONDS
        for key, idle in list(self._idle.items()):
            kept = []
            for client, since in idle:
                if since >= cutoff:
                    kept.append((client, since))
                else:
                    loop.create_task(_quit(client))
            self._idle[key] = kept
            if not kept:
                del self._idle[key]
        self._reap_later(loop)


async def _quit(client: _Client) -> None:
    try:
        async with asyncio.timeout(5):
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        client.close()


CONNECTIONS = _Connections()


def vetted_addresses(host: str, port: int, guard: Guard) -> list[IPAddress]:
    """Every address `host` stands for, each checked against the egress policy; a refused
    host is a permanent failure (retrying cannot change the answer), a name that does not
    resolve a temporary one."""
    try:
        parsed = egress.parse_host(host)
    except ValueError as exc:
        raise DeliveryError(f"refused: SMTP host {host!r}: {exc}", retryable=False) from exc
    target = Target(scheme="smtp", host=parsed, port=port, userinfo="", path="",
                    written_host=host)
    try:
        addresses = list(resolve_target(target, guard))
    except Exception as exc:  # the resolver's own error type (httpx.ConnectError)
        raise DeliveryError(f"SMTP server unreachable: {exc}", retryable=True) from exc
    try:
        egress.check(target, addresses, guard.allow)
    except Refused as exc:
        raise DeliveryError(f"SMTP host {exc}", retryable=False,
                            response={"rule": exc.rule}) from exc
    return addresses


async def _connect(addresses: Sequence[IPAddress], port: int, timeout: float) -> socket.socket:
    """A connected socket to the first vetted address that answers (no second lookup)."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (str(address), port)), timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            last = exc if isinstance(exc, OSError) else OSError(f"connect timed out: {exc}")
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert last is not None
    raise last


def _refused(code: int, text: str) -> DeliveryError:
    """4xx is a temporary refusal (retry later); 5xx is permanent."""
    return DeliveryError(f"SMTP {code} {text}".strip(), retryable=400 <= code < 500,
                         response={"code": code, "message": text})
