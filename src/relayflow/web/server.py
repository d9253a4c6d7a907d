"""The HTTP server behind `relayflow serve`: uvicorn with the httptools parser, and a
protocol that bounds what a client may send before the application sees a request.

httptools (llhttp) has no limit of its own on the request line and headers: it would
buffer a header of tens of MiB and parse it in full on the event loop, stalling every other
client. The protocol counts the head's bytes as they arrive and feeds the parser no more
than Settings.max_header_bytes of an unfinished head. Why not h11, which has such a limit
built in: h11 parses in Python, and took a fifth of the server's CPU per webhook.

What the protocol adds to uvicorn's httptools protocol:
- a head larger than Settings.max_header_bytes is answered 431 (uvicorn would buffer it);
- the request line and headers must arrive within Settings.body_read_timeout_seconds of the
  connection opening or of the previous response (then 408, or a silent close when nothing
  was sent): uvicorn times nothing out before a request is parsed, so a client trickling
  one header line at a time (slowloris) or sending nothing could hold a connection forever.
The body has the same deadline, counted from the end of the headers, in web/limits.py.
"""

from __future__ import annotations

import asyncio
import gc
import http
import json
import logging
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relayflow.config import Settings
from relayflow.errors import HeadersTooLarge, RelayflowError, RequestTimeout
from relayflow.web.errors import error_body
from relayflow.web.security import AccessLogTokens

log = logging.getLogger(__name__)

# After refusing a request that is still arriving, the connection stays open this long (its
# writing side shut, what arrives dropped) so the client reads the answer: closing a socket
# with unread data makes the kernel send a reset, which can destroy the answer in flight.
LINGER_SECONDS = 2.0


class IntakeProtocol(HttpToolsProtocol):
    head_timeout: ClassVar[float] = 10.0
    max_head_bytes: ClassVar[int] = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False
        # Between two requests, and while one's head arrives: the bytes of that head so far.
        # (Bytes of a pipelined request that came in the same read as the one before it are
        # not counted: a head can pass the limit by one read, 256 KiB at most.)
        self._in_head = True
        self._head_bytes = 0
        self._heads = 0  # complete heads so far on this connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self._head_bytes
        self._head_bytes += len(data)
        if len(data) <= room:
            super().data_received(data)
            return
        heads = self._heads
        super().data_received(data[:room])  # the head may end within the limit
        if self._lingering or self.transport.is_closing():
            return
        if self._heads == heads:
            self._too_large()
        else:
            super().data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        self._disarm_head_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Waiting for the next request on this connection (unless a pipelined one is in).
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._arm_head_deadline()

    def _too_large(self) -> None:
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
        answering = self.cycle is not None and not self.cycle.response_complete
        if self.transport.is_closing() or self._lingering or not self._in_head or answering:
            return
        if not self._head_bytes:  # nothing sent at all: an idle connection
            self.transport.close()
            return
        log.info("request head not complete after %gs from %s; answered 408",
                 self.head_timeout, _client(self.client))
        self._refuse(RequestTimeout(
            f"The request line and headers did not arrive within {self.head_timeout:g} s."))

    def _refuse(self, exc: RelayflowError) -> None:
        """Answers outside the parser (which cannot answer a request it has not parsed),
        then lingers before closing."""
        self._disarm_head_deadline()
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
                {"head_timeout": settings.body_read_timeout_seconds,
                 "max_head_bytes": settings.max_header_bytes})


def run(application: Any, settings: Settings) -> None:
    """Serves `application` until SIGINT or SIGTERM."""
    logging.getLogger("uvicorn.access").addFilter(AccessLogTokens())
    # What the imports and the app made lives as long as the process: out of the collector's
    # reach, a full collection no longer walks it on some request. Measured over 20 calls
    # of a list (bench/history.py): 74-211 ms pauses before, 6-17 ms after.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        application, host=settings.host, port=settings.port, log_level="info",
        # JSON lines: uvicorn's loggers go through the root logger's formatter
        # (telemetry/logs.py) instead of its own text formatters.
        log_config=None if settings.log_format.lower() == "json" else uvicorn.config.LOGGING_CONFIG,
        http=protocol_for(settings),
        # An idle keep-alive connection is closed after this; uvicorn's default, made explicit.
        timeout_keep_alive=5,
    )
