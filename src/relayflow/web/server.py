"""The HTTP server behind `relayflow serve`: uvicorn with the h11 parser, and a protocol
that bounds what a client may send before the application sees a request.

Why h11 and not uvicorn's default (httptools): httptools has no limit on the size of the
request line and headers, so one request with a header of tens of MiB is parsed in full on
the event loop, stalling every other client for seconds. h11 refuses a head larger than
`max_incomplete_event_size` as soon as that many bytes are buffered; h11 parses more slowly
than httptools, which matters little next to a database round trip per request.

What the protocol adds to uvicorn's h11 protocol:
- a head larger than Settings.max_header_bytes is answered 431 (uvicorn says 400);
- the request line and headers must arrive within Settings.body_read_timeout_seconds of the
  connection opening or of the previous response (then 408, or a silent close when nothing
  was sent): uvicorn times nothing out before a request is parsed, so a client trickling
  one header line at a time (slowloris) or sending nothing could hold a connection forever.
The body has the same deadline, counted from the end of the headers, in web/limits.py.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from relayflow.config import Settings
from relayflow.errors import HeadersTooLarge, RelayflowError, RequestTimeout
from relayflow.web.errors import error_body
from relayflow.web.security import AccessLogTokens

log = logging.getLogger(__name__)

# After refusing a request that is still arriving, the connection stays open this long (its
# writing side shut, what arrives dropped) so the client reads the answer: closing a socket
# with unread data makes the kernel send a reset, which can destroy the answer in flight.
LINGER_SECONDS = 2.0


class _Connection(h11.Connection):
    """Remembers the status h11 suggests for a request it refuses (431: head too large)."""

    refused_with: int = 400

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refused_with = exc.error_status_hint
            raise


class IntakeProtocol(H11Protocol):
    head_timeout: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = self.config.h11_max_incomplete_event_size or 16 * 1024
        self._connection = _Connection(h11.SERVER,
                                       max_incomplete_event_size=self.max_head_bytes)
        self.conn = self._connection
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a request head is complete (or refused)
            self._disarm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Waiting for the next request on this connection (a pipelined one may be parsed).
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_deadline()

    def send_400_response(self, msg: str) -> None:
        if self._connection.refused_with != 431:
            super().send_400_response(msg)
            return
        log.info("request head over %d bytes from %s; answered 431", self.max_head_bytes,
                 _client(self.client))
        kib = self.max_head_bytes // 1024
        self._refuse(HeadersTooLarge(f"The request line and headers are larger than {kib} KiB."))

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_deadline_passed)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if not self.conn.trailing_data[0]:  # nothing sent at all: an idle connection
            self.transport.close()
            return
        log.info("request head not complete after %gs from %s; answered 408",
                 self.head_timeout, _client(self.client))
        self._refuse(RequestTimeout(
            f"The request line and headers did not arrive within {self.head_timeout:g} s."))

    def _refuse(self, exc: RelayflowError) -> None:
        """Answers outside h11 (which cannot answer a request it has not parsed), then
        lingers before closing."""
        body = json.dumps(error_body(type(exc).__name__, exc.detail)).encode()
        phrase = http.HTTPStatus(exc.status_code).phrase
        head = (f"HTTP/1.1 {exc.status_code} {phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
        self.transport.write(head.encode() + body)
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _client(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "unknown client"


def protocol_for(settings: Settings) -> type[IntakeProtocol]:
    return type("IntakeProtocol", (IntakeProtocol,),
                {"head_timeout": settings.body_read_timeout_seconds})


def run(application: Any, settings: Settings) -> None:
    """Serves `application` until SIGINT or SIGTERM."""
    logging.getLogger("uvicorn.access").addFilter(AccessLogTokens())
    uvicorn.run(
        application, host=settings.host, port=settings.port, log_level="info",
        http=protocol_for(settings),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        # An idle keep-alive connection is closed after this; uvicorn's default, made explicit.
        timeout_keep_alive=5,
    )
