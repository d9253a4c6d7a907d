"""HTTP/1.1 messages read off a raw socket, for tests that must see what is on the wire."""

from __future__ import annotations

import socket


def read_message(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """One request or response framed by Content-Length: its raw head and its body (what
    arrived of it before the peer closed). None if the peer closed before a whole head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body
