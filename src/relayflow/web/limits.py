"""Read the request body up front: within the size limit, within the deadline, and without
letting a client that hangs up half-way reach the application."""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayflow.errors import PayloadTooLarge, RelayflowError, RequestTimeout
from relayflow.web.errors import error_response
from relayflow.web.security import loggable_path

log = logging.getLogger(__name__)


class _ClientGone(Exception):
    pass


class BodyLimitMiddleware:
    """Answers 413 when Content-Length says the body is too large, and otherwise reads the
    body up front counting bytes, because a chunked body has no Content-Length and a client
    can send more than it declared. The body is then replayed to the application.

    The whole body must arrive within `timeout` seconds of the headers (408 otherwise): a
    deadline for the whole body, not for each read, so trickling a byte at a time does not
    stretch it. A client that disconnects before its body is complete gets one INFO line;
    the application never sees the request, so nothing downstream reports it again.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            limit = _size(self.max_bytes)
            await _refuse(PayloadTooLarge(f"The request body is larger than {limit}."),
                          scope, receive, send)
            return
        buffered: list[Message] = []
        try:
            async with asyncio.timeout(self.timeout):
                await self._read(receive, buffered)
        except TimeoutError:
            received = sum(len(m.get("body", b"")) for m in buffered)
            log.info("request body not complete after %ss: %s %s (%d bytes received)",
                     _seconds(self.timeout), scope["method"], loggable_path(scope["path"]),
                     received)
            await _refuse(RequestTimeout(f"The request body did not arrive within "
                                         f"{_seconds(self.timeout)} s."), scope, receive, send)
            return
        except PayloadTooLarge as exc:
            await _refuse(exc, scope, receive, send)
            return
        except _ClientGone:
            received = sum(len(m.get("body", b"")) for m in buffered)
            of = f" of {declared}" if declared is not None else ""
            log.info("client went away before sending the whole body: %s %s (%d%s bytes)",
                     scope["method"], loggable_path(scope["path"]), received, of)
            return

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, buffered: list[Message]) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            buffered.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise PayloadTooLarge(f"The request body is larger than {_size(self.max_bytes)}.")
            if not message.get("more_body", False):
                return


async def _refuse(exc: RelayflowError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(exc)
    # The rest of the body is never read, so the connection cannot be reused.
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit >= 1024 else f"{limit} B"


def _seconds(value: float) -> str:
    return f"{value:g}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
