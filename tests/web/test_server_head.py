"""The server's request-head limits (web/server.py) at their edges, over raw sockets against
a real `relayflow serve`: the size limit counts the head alone, whatever else arrives in
the same read, and the head deadline cuts idle and trickling clients off.

The attacks themselves (a 20 MiB header, slowloris) are in tests/faults/test_intake.py.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayflow.storage.migrate import upgrade
from tests.support.server import Served, read_response, request, serve

LIMIT = 16 * 1024  # Settings.max_header_bytes
DEADLINE = 1.0  # RELAYFLOW_BODY_READ_TIMEOUT_SECONDS here


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("head")
    url = f"sqlite:///{tmp / 'relayflow.db'}"
    upgrade(url)
    with serve(url, tmp, body_read_timeout_seconds=str(DEADLINE)) as served:
        yield served


def _get(header_bytes: int) -> bytes:
    """GET /healthz whose head is exactly `header_bytes` long."""
    start, end = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (header_bytes - len(start) - len(end)) + end


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


class TestSize:
    def test_a_head_of_exactly_the_limit_is_served(self, server: Served) -> None:
        assert request(server, _get(LIMIT))[0] == 200

    def test_a_head_one_byte_over_the_limit_sent_at_once_is_refused(self, server: Served) -> None:
        status, head, body = request(server, _get(LIMIT + 1))
        assert status == 431, head
        assert json.loads(body)["error"]["code"] == "HeadersTooLarge"

    def test_a_head_over_the_limit_trickled_in_small_writes_is_refused(
        self, server: Served
    ) -> None:
        raw = _get(LIMIT + 4096)
        with server.connect() as sock:
            for i in range(0, LIMIT + 1024, 1024):  # stops before the head's end
                sock.sendall(raw[i:i + 1024])
                time.sleep(0.005)
            status, head, _ = read_response(sock)
        assert status == 431, head

    def test_a_refused_head_is_answered_once_though_its_client_stays(
        self, server: Served
    ) -> None:
        # The connection lingers after the 431; its head deadline must not answer again.
        before = len(server.stderr())
        with server.connect() as sock:
            sock.sendall(_get(LIMIT + 1))
            assert read_response(sock)[0] == 431
            time.sleep(DEADLINE + 0.5)
            assert _read_all(sock) == b""  # closed after the linger, nothing more said
        log = server.stderr()[before:]
        assert "Traceback" not in log, log
        assert "ERROR" not in log, log
        assert log.count("answered 431") == 1, log
        assert "answered 408" not in log, log

    def test_a_large_body_in_the_same_write_as_a_small_head_is_not_counted(
        self, server: Served
    ) -> None:
        # 200 KiB arrive with the head in one write (and mostly in one read): only the head
        # counts against the limit, so the request reaches the app (an unknown hook: 404).
        body = json.dumps({"pad": "x" * 200_000}).encode()
        raw = (b"POST /hooks/no-such-token HTTP/1.1\r\nHost: t\r\n"
               b"Content-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
        status, head, _ = request(server, raw)
        assert status == 404, head

    def test_requests_pipelined_in_one_write_are_all_answered(self, server: Served) -> None:
        last = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        with server.connect() as sock:
            sock.sendall(_get(LIMIT) + _get(200) + last)
            answers = _read_all(sock)
        assert answers.count(b"HTTP/1.1 200 OK\r\n") == 3, answers[:500]


class TestDeadline:
    def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
        self, server: Served
    ) -> None:
        with server.connect() as sock:
            started = time.monotonic()
            assert _read_all(sock) == b""
        assert DEADLINE - 0.1 < time.monotonic() - started < DEADLINE + 3

    def test_a_head_that_stops_half_way_is_answered_408(self, server: Served) -> None:
        with server.connect() as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            started = time.monotonic()
            status, head, _ = read_response(sock)
        assert status == 408, head
        assert DEADLINE - 0.1 < time.monotonic() - started < DEADLINE + 3

    def test_a_kept_alive_connection_gets_a_new_deadline_after_each_answer(
        self, server: Served
    ) -> None:
        with server.connect() as sock:
            for _ in range(3):  # each wait alone is within the deadline, together past it
                time.sleep(DEADLINE * 0.6)
                sock.sendall(_get(100))
                assert read_response(sock)[0] == 200
            started = time.monotonic()
            assert _read_all(sock) == b""  # then idle: closed quietly
        assert time.monotonic() - started < DEADLINE + 3
