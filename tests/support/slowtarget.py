"""An HTTP target on 127.0.0.1 that misbehaves on purpose, written on raw sockets.

Modes (one per server):
  headers  the status line, then one header byte every `interval` seconds: the response
           headers never end while it trickles
  body     complete headers (Content-Length: 1 MB), then one body byte every `interval`
  huge     complete headers (Content-Length: `size`), then the body as fast as the client
           takes it, generated on the fly from one 64 KiB block (never held whole)
  gzip     the same `size` bytes gzip-compressed on the fly (about 1000:1), ending when the
           connection closes: a small answer that inflates to a huge one

A trickle lasts `seconds`, but the server never holds one connection longer than
`hold_limit`: that caps how long a client without an overall deadline is held, so a test
run against such a client (to measure it) stays short. For every connection the server
records when it was accepted, when it ended, how many bytes it sent and whether the client
hung up first (`client_closed`): that is what reached the wire, not what the client says.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field

from tests.support import wire

BLOCK = b"a" * 65536


@dataclass
class Served:
    accepted_at: float
    request: bytes = b""
    ended_at: float | None = None
    bytes_sent: int = 0
    client_closed: bool = False

    @property
    def held(self) -> float:
        """Seconds the connection stayed open."""
        return (self.ended_at or time.monotonic()) - self.accepted_at


@dataclass
class SlowTarget:
    mode: str
    seconds: float = 60.0
    interval: float = 1.0
    hold_limit: float = 15.0
    size: int = 300 * 1024 * 1024
    served: list[Served] = field(default_factory=list)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self._sock is not None
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> SlowTarget:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        self._spawn(self._accept)
        return self

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def wait_ended(self, timeout: float = 10.0) -> Served:
        """The first connection, once the server has seen it end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.served and self.served[0].ended_at is not None:
                return self.served[0]
            time.sleep(0.02)
        raise AssertionError(f"no connection ended within {timeout}s: {self.served}")

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            served = Served(accepted_at=time.monotonic())
            self.served.append(served)
            self._spawn(self._serve, conn, served)

    def _serve(self, conn: socket.socket, served: Served) -> None:
        try:
            served.request = _read_request(conn)
            if self.mode == "headers":
                self._send(conn, served, b"HTTP/1.1 200 OK\r\n")
                self._trickle(conn, served, b"X-Slow: " + b"a" * 1_000_000)
            elif self.mode == "body":
                self._send(conn, served, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                         b"Content-Length: 1000000\r\n\r\n")
                self._trickle(conn, served, b"a" * 1_000_000)
            elif self.mode == "gzip":
                self._send(conn, served, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                         b"Content-Encoding: gzip\r\nConnection: close\r\n\r\n")
                conn.settimeout(self.hold_limit)
                self._flood(conn, served, zlib.compressobj(9, zlib.DEFLATED, 31))
            else:
                self._send(conn, served, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           + f"Content-Length: {self.size}\r\n\r\n".encode())
                conn.settimeout(self.hold_limit)  # a client that stops reading must not hold us
                self._flood(conn, served)
        except TimeoutError:
            pass
        except OSError:  # the client hung up: a reset or a broken pipe on our write
            served.client_closed = True
        finally:
            served.ended_at = time.monotonic()
            conn.close()

    def _send(self, conn: socket.socket, served: Served, data: bytes) -> None:
        conn.sendall(data)
        served.bytes_sent += len(data)

    def _trickle(self, conn: socket.socket, served: Served, data: bytes) -> None:
        ends = served.accepted_at + min(self.seconds, self.hold_limit)
        for index in range(len(data)):
            if self._stop.is_set() or time.monotonic() >= ends:
                return
            self._send(conn, served, data[index:index + 1])
            # Wait for the next byte, watching for the client to hang up meanwhile.
            readable, _, _ = select.select([conn], [], [], self.interval)
            if readable and not conn.recv(1024):
                served.client_closed = True
                return

    def _flood(self, conn: socket.socket, served: Served,
               compress: zlib._Compress | None = None) -> None:
        ends = served.accepted_at + self.hold_limit
        left = self.size
        while left > 0 and not self._stop.is_set() and time.monotonic() < ends:
            chunk = BLOCK if left >= len(BLOCK) else BLOCK[:left]
            left -= len(chunk)
            if compress is not None:
                chunk = compress.compress(chunk) + (b"" if left else compress.flush())
            if chunk:
                self._send(conn, served, chunk)


def _read_request(conn: socket.socket) -> bytes:
    """The request head and its Content-Length body (the client is well-behaved)."""
    conn.settimeout(10)
    message = wire.read_message(conn)
    conn.settimeout(None)
    return b"" if message is None else message[0] + b"\r\n\r\n" + message[1]


def start(mode: str, **over: float | int) -> SlowTarget:
    return SlowTarget(mode=mode, **over).start()  # type: ignore[arg-type]
