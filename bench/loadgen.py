"""A small HTTP/1.1 load generator: keep-alive connections over asyncio streams, requests
written as bytes, answers read by Content-Length.

Why not httpx: at 32 requests in flight httpx spends about 6 ms of CPU per request on this
machine, as much as the server it measures; on two cores the client then sets the pace. This
client spends a few hundredths of that, so the figures are the server's. It speaks only what
the benches need: POST with a JSON body, answers with a Content-Length, `connection: close`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit


class Refused(Exception):
    """The connection failed or closed before an answer arrived."""

    begun = 0.0  # as in Client.post

    def __init__(self, message: str, *, unanswered: bool = False) -> None:
        super().__init__(message)
        self.unanswered = unanswered  # the server closed without a byte of an answer


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Status and body of one request; reconnects first when the last answer or the
        server (an idle connection past its keep-alive) closed the connection."""
        if self.reader is not None and self.reader.at_eof():
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(head + body)
            answer = await self.reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(answer)
            content = await self.reader.readexactly(int(headers.get(b"content-length", 0)))
        except asyncio.IncompleteReadError as exc:
            self.close()
            raise Refused(f"closed after {len(exc.partial)} bytes of an answer",
                          unanswered=not exc.partial) from exc
        except (OSError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise Refused(f"{type(exc).__name__}: {exc}") from exc
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    line, *fields = head[:-4].split(b"\r\n")
    headers = {}
    for field in fields:
        name, _, value = field.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        raise Refused("chunked answers are not supported by this client")
    return int(line.split(b" ", 2)[1]), headers


class Client:
    """POSTs JSON to one URL over a pool of keep-alive connections (at most `size` open)."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.idle: list[Connection] = []
        self.gate = asyncio.Semaphore(size)
        self.resent = 0  # requests sent again (see post)

    async def post(self, payload: Any, headers: dict[str, str]) -> tuple[int, bytes, float]:
        """Status, body and the perf_counter() at which the request got its connection (a
        request waits for one while `size` are busy)."""
        body = json.dumps(payload).encode()
        lines = [f"POST {self.path} HTTP/1.1", f"host: {self.host}:{self.port}",
                 "content-type: application/json", f"content-length: {len(body)}",
                 *(f"{name}: {value}" for name, value in headers.items())]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        async with self.gate:
            connection = self.idle.pop() if self.idle else Connection(self.host, self.port)
            reused = connection.writer is not None
            begun = time.perf_counter()
            try:
                try:
                    status, content = await connection.post(head, body)
                except Refused as exc:
                    # A kept-alive connection the server closed as this request left: the
                    # race every HTTP/1.1 client meets. Sent again once on a new connection,
                    # as webhook senders do (the request carries its Idempotency-Key).
                    if not (reused and exc.unanswered):
                        raise
                    self.resent += 1
                    status, content = await connection.post(head, body)
                return status, content, begun
            except Refused as exc:
                exc.begun = begun
                raise
            finally:
                self.idle.append(connection)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()
