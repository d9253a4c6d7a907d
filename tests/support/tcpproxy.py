"""A small TCP proxy on 127.0.0.1 for database fault tests: cut, delay or reset connections.

The proxy runs its own asyncio event loop in a daemon thread, so test code (and the
worker processes pointed at `port`) see an ordinary TCP server. The controls are called
from the test's thread and return once they have taken effect:

  cut()          reset every open connection and every new one until restore()
  restore()      forward again (and drop any delay)
  delay(s)       hold each forwarded chunk s seconds before passing it on
  reset()        reset the open connections once; new ones are forwarded as usual

"Reset" means a TCP RST (SO_LINGER 0), what a crashed peer or a dropped NAT entry
looks like to the client, not a polite close.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections = 0  # accepted and forwarded, for tests that want to see traffic
        self.refused = 0  # reset at once because of a cut
        self._cut = False
        self._delay = 0.0
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._pipes: set[asyncio.Future[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcpproxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None

    # --- controls (any thread) ------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen)
        return self

    def cut(self) -> None:
        self._call(self._set, cut=True, drop=True)

    def restore(self) -> None:
        self._call(self._set, cut=False, delay=0.0)

    def delay(self, seconds: float) -> None:
        self._call(self._set, delay=seconds)

    def reset(self) -> None:
        self._call(self._set, drop=True)

    def close(self) -> None:
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, fn: Callable[..., Awaitable[T]], **kwargs: object) -> T:
        return asyncio.run_coroutine_threadsafe(fn(**kwargs), self._loop).result(10)

    # --- the event loop's side ------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set(self, *, cut: bool | None = None, delay: float | None = None,
                   drop: bool = False) -> None:
        if cut is not None:
            self._cut = cut
        if delay is not None:
            self._delay = delay
        if drop:
            for client, upstream in list(self._open):
                _abort(client)
                _abort(upstream)
            self._open.clear()

    async def _shutdown(self) -> None:
        await self._set(drop=True)
        if self._server is not None:
            self._server.close()
        for pipe in self._pipes:  # each connection's handler then ends on its own
            pipe.cancel()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:  # the database is down: the client sees a reset, as if it were
            _abort(writer)
            return
        pair = (writer, up_writer)
        self._open.add(pair)
        self.connections += 1
        pipes = {asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))}
        self._pipes |= pipes
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            self._pipes -= pipes
            if pair in self._open:  # one side closed: close the other (not reset)
                self._open.discard(pair)
                writer.close()
                up_writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                if self._delay:
                    await asyncio.sleep(self._delay)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass


def start(upstream_host: str, upstream_port: int) -> TcpProxy:
    return TcpProxy(upstream_host, upstream_port).start()
