"""A real `relayflow serve` process on a free loopback port, and raw-socket clients for it.

The intake tests speak HTTP/1.1 by hand: what matters is what the server does with bytes a
normal client would never send (a declared body that never comes, a header of megabytes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import TEST_SECRET_KEY
from tests.support import wire
from tests.support.processes import stop, wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


@contextmanager
def serve(database_url: str, tmp_path: Path, **env: str) -> Iterator[Served]:
    """`relayflow serve` with its embedded worker; extra RELAYFLOW_* settings via env."""
    port = free_port()
    stderr_path = tmp_path / f"serve-{port}.log"
    environment = {
        **os.environ,
        "RELAYFLOW_DATABASE_URL": database_url,
        "RELAYFLOW_SECRET_KEY": TEST_SECRET_KEY,
        "RELAYFLOW_POLL_SECONDS": "0.2",
        "RELAYFLOW_LOG_LEVEL": "INFO",
        **{f"RELAYFLOW_{k.upper()}": v for k, v in env.items()},
    }
    environment.pop("RELAYFLOW_FAULT", None)
    with stderr_path.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "relayflow", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            # uvicorn writes its access log to stdout: kept, so tests can read it too.
            env=environment, stdout=sink, stderr=subprocess.STDOUT,
        )
    served = Served(port=port, process=process, stderr_path=stderr_path)
    try:
        wait_until(lambda: _answers(served), timeout=30, what="relayflow serve to answer")
        yield served
    finally:
        stop(process)


def _answers(served: Served) -> bool:
    if served.process.poll() is not None:
        raise AssertionError(f"relayflow serve exited:\n{served.stderr()}")
    try:
        return request(served, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", timeout=1)[0] == 200
    except OSError:
        return False


def read_response(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """Reads one response (Content-Length framed): status, raw head, body."""
    message = wire.read_message(sock)
    if message is None:
        raise ConnectionError("closed before a full response head")
    head, body = message
    return int(head.split(b" ", 2)[1]), head, body


def request(served: Served, raw: bytes, *, timeout: float = 10.0) -> tuple[int, bytes, bytes]:
    """One request on a fresh connection; `raw` is sent as is."""
    with served.connect(timeout) as sock:
        sock.sendall(raw)
        return read_response(sock)


def timed_request(served: Served, raw: bytes, *,
                  timeout: float = 10.0) -> tuple[float, int, bytes]:
    started = time.monotonic()
    status, _, body = request(served, raw, timeout=timeout)
    return time.monotonic() - started, status, body


def hold_open_body(served: Served, path: str = "/api/v1/contacts",
                   declared: int = 1000) -> socket.socket:
    """A connection that declares a body, sends a few bytes of it and then nothing."""
    sock = served.connect()
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {declared}\r\n\r\n{{".encode())
    return sock
