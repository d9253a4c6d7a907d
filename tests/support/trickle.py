"""A real SMTP-ish server on 127.0.0.1 that answers one byte at a time.

`stage` says where it slows down: "greeting" trickles its 220 banner from the start;
"after_data" answers EHLO, MAIL, RCPT and DATA at once, takes the message, then trickles
the final reply. Each byte keeps a per-read timeout from firing; only an overall deadline
stops the client. `received` holds every byte the client sent.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class TrickleServer:
    port: int
    stage: str
    delay: float
    received: bytearray = field(default_factory=bytearray)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        for thread in self._threads:
            thread.join(5)

    def _trickle(self, conn: socket.socket, text: bytes) -> None:
        for byte in text:
            if self._stop.wait(self.delay):
                return
            try:
                conn.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: the point
                return

    def _line(self, conn: socket.socket, buffer: bytearray) -> bytes | None:
        while b"\r\n" not in buffer:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            self.received += chunk
            buffer += chunk
        line, _, rest = bytes(buffer).partition(b"\r\n")
        buffer[:] = rest
        return line

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            long_reply = b"220 " + b"x" * 600 + b"\r\n"
            if self.stage == "greeting":
                self._trickle(conn, long_reply)
                return
            conn.sendall(b"220 trickle.test ESMTP\r\n")
            buffer = bytearray()
            while not self._stop.is_set():
                line = self._line(conn, buffer)
                if line is None:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 trickle.test\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                    conn.sendall(b"250 OK\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    while b"\r\n.\r\n" not in buffer:
                        chunk = conn.recv(4096)
                        if not chunk:
                            return
                        self.received += chunk
                        buffer += chunk
                    self._trickle(conn, b"250 " + b"x" * 600 + b"\r\n")
                    return
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)


def start(stage: str, *, delay: float = 0.1) -> TrickleServer:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)  # so close() is noticed
    server = TrickleServer(port=int(sock.getsockname()[1]), stage=stage, delay=delay,
                           _sock=sock)
    thread = threading.Thread(target=server._accept, daemon=True)
    thread.start()
    server._threads.append(thread)
    return server


def elapsed(since: float) -> float:
    return time.monotonic() - since
