"""Intake against a real `relayflow serve`: no client, by what it sends or fails to send,
stalls anyone else.

Raw sockets, because the attacks are bytes no HTTP library sends: a declared body that never
comes, a header of megabytes, headers trickled a line at a time, a client that hangs up
half-way through its body. Each server here runs SQLite with the embedded worker.
About 15 s in all (three server starts and two deadlines of 2 s).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from relayflow.services import workspace as workspace_service
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from relayflow.storage.migrate import upgrade
from tests.support.server import (
    Served,
    hold_open_body,
    read_response,
    request,
    serve,
    timed_request,
)

MIB = 1024 * 1024
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
# Generous for a loaded 2-core machine: a stalled server answers in seconds or never.
PROMPT = 2.0


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A migrated SQLite file with one workspace; returns its URL and an admin API key."""
    url = f"sqlite:///{tmp_path_factory.mktemp('intake') / 'relayflow.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        _, key = workspace_service.create(session, slug="acme", name=None, now=datetime.now(UTC))
    engine.dispose()
    return url, key


@pytest.fixture(scope="module")
def server(database: tuple[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Default intake settings (10 s body deadline, 16 KiB of headers)."""
    with serve(database[0], tmp_path_factory.mktemp("serve")) as served:
        yield served


@pytest.fixture(scope="module")
def quick_server(database: tuple[str, str],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A 2 s body deadline, so the deadline tests end quickly."""
    with serve(database[0], tmp_path_factory.mktemp("serve"),
               body_read_timeout_seconds="2") as served:
        yield served


def _list_contacts(key: str) -> bytes:
    return (f"GET /api/v1/contacts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            "\r\n").encode()


def _upsert_contact(key: str, email: str) -> bytes:
    body = json.dumps({"email": email}).encode()
    return (f"POST /api/v1/contacts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


class TestHeldBodies:
    def test_fifty_connections_holding_a_declared_body_stall_nothing(
        self, server: Served, database: tuple[str, str]
    ) -> None:
        key = database[1]
        holders = [hold_open_body(server, path) for _ in range(25)
                   for path in ("/api/v1/contacts", "/nowhere")]
        try:
            time.sleep(0.3)  # let the server take them all in
            timings = []
            for i in range(5):
                elapsed, status, _ = timed_request(server, HEALTHZ, timeout=PROMPT + 3)
                assert status == 200
                timings.append(elapsed)
                elapsed, status, body = timed_request(server, _list_contacts(key),
                                                      timeout=PROMPT + 3)
                assert status == 200, body
                timings.append(elapsed)
                elapsed, status, body = timed_request(
                    server, _upsert_contact(key, f"held{i}@example.com"), timeout=PROMPT + 3)
                assert status in (200, 201), body
                timings.append(elapsed)
            assert max(timings) < PROMPT, timings
        finally:
            _close_all(holders)


class TestHeaderSize:
    def test_a_20_mib_header_is_refused_with_431_and_others_keep_flowing(
        self, server: Served
    ) -> None:
        latencies: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                latencies.append(timed_request(server, HEALTHZ, timeout=PROMPT + 3)[0])
                time.sleep(0.02)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        try:
            started = time.monotonic()
            with server.connect(timeout=10) as sock:
                sender = threading.Thread(target=_send_quietly, daemon=True, args=(
                    sock, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (20 * MIB)
                    + b"\r\n\r\n"))
                sender.start()
                status, head, body = read_response(sock)
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            prober.join(PROMPT + 5)
        assert status == 431, head
        assert b"connection: close" in head.lower()
        assert json.loads(body)["error"]["code"] == "HeadersTooLarge"
        assert elapsed < PROMPT, elapsed
        assert latencies, "no /healthz answered meanwhile"
        assert max(latencies) < PROMPT, latencies

    def test_a_header_within_the_limit_is_served(self, server: Served) -> None:
        raw = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Fine: " + b"a" * 12_000 + b"\r\n\r\n"
        assert request(server, raw)[0] == 200


class TestDeadlines:
    def test_a_body_that_never_finishes_gets_408_after_the_deadline(
        self, quick_server: Served
    ) -> None:
        started = time.monotonic()
        with hold_open_body(quick_server) as sock:
            sock.settimeout(10)
            status, head, body = read_response(sock)
        elapsed = time.monotonic() - started
        assert status == 408, head
        assert b"connection: close" in head.lower()
        assert json.loads(body)["error"]["code"] == "RequestTimeout"
        assert 1.5 < elapsed < 2 + PROMPT, elapsed

    def test_trickled_headers_are_cut_off_at_the_deadline(self, quick_server: Served) -> None:
        started = time.monotonic()
        with quick_server.connect(timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            closed_at = None
            for _ in range(40):  # one header line every 0.25 s: 10 s if nothing cuts it off
                try:
                    sock.sendall(b"X-Drip: 1\r\n")
                except OSError:
                    closed_at = time.monotonic()
                    break
                time.sleep(0.25)
                if _peer_closed(sock):
                    closed_at = time.monotonic()
                    break
        assert closed_at is not None, "a slowloris client held its connection for 10 s"
        assert closed_at - started < 2 + PROMPT, closed_at - started


class TestDisconnect:
    # /hooks/ reads its body in a dependency: that is where the tracebacks came from.
    @pytest.mark.parametrize("path", ["/hooks/no-such-token", "/api/v1/contacts"])
    def test_a_client_gone_mid_body_is_one_info_line(self, server: Served, path: str) -> None:
        before = len(server.stderr())
        sock = hold_open_body(server, path)
        time.sleep(0.3)
        sock.close()
        time.sleep(1.0)
        # The server is fine afterwards.
        assert request(server, HEALTHZ)[0] == 200
        log = server.stderr()[before:]
        assert "Traceback" not in log, log
        assert "ERROR" not in log, log
        gone = [line for line in log.splitlines() if re.search(r"\bINFO\b.*went away", line)]
        assert len(gone) == 1, log


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Sends until the server stops reading; the refusal is what the test looks at."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


def _peer_closed(sock: socket.socket) -> bool:
    """True once the server answered (a 408) or closed: either way it cut the client off."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)
