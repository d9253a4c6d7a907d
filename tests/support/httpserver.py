"""A small real HTTP server on 127.0.0.1 for INTEGRATION tests.

Paths:
  /json            200 {"account": {"tier": "gold"}, "echo": <request body>}
  /status/<code>   answers that status
  /slow/<seconds>  sleeps, then 200
  /flaky/<n>       the first n requests with a given Idempotency-Key get 503, then 200
  /echo            200 with the request headers and body (to test redaction of echoes)
  /redirect?to=URL&status=302   a redirect to URL (to test that every hop is checked)
  /messages        a messaging provider: 201 {"id": "msg-N"} once per Idempotency-Key, then
                   200 with the same id for a repeat (which is not delivered again)
Every request is recorded (method, path, headers, body). Requests carrying an
Idempotency-Key already seen are counted in `replays` (the de-duplicating provider a
well-behaved integration target would be).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class TestHttpServer:
    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    flaky_counts: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> message id

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def keys(self) -> list[str]:
        return [r.headers.get("Idempotency-Key", "") for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start(host: str = "127.0.0.1") -> TestHttpServer:
    state: dict[str, TestHttpServer] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return None

        def _answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            me = state["server"]
            headers = {k: v for k, v in self.headers.items()}
            with me.lock:
                me.requests.append(Recorded(self.command, self.path, headers, body))
            parts = self.path.strip("/").split("/")
            if parts[0] == "status":
                self._answer(int(parts[1]), {"status": int(parts[1])})
            elif parts[0] == "slow":
                time.sleep(float(parts[1]))
                self._answer(200, {"slept": float(parts[1])})
            elif parts[0] == "flaky":
                key = headers.get("Idempotency-Key", "")
                with me.lock:
                    seen = me.flaky_counts.get(key, 0)
                    me.flaky_counts[key] = seen + 1
                if seen < int(parts[1]):
                    self._answer(503, {"error": "try again"})
                else:
                    self._answer(200, {"ok": True, "tries": seen + 1})
            elif parts[0] == "messages":
                key = headers.get("Idempotency-Key", "")
                with me.lock:
                    repeat = key in me.delivered
                    if not repeat:
                        me.delivered[key] = f"msg-{len(me.delivered) + 1}"
                self._answer(200 if repeat else 201, {"id": me.delivered[key]})
            elif parts[0].startswith("redirect"):
                query = parse_qs(urlsplit(self.path).query)
                self.send_response(int(query.get("status", ["302"])[0]))
                self.send_header("Location", query["to"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif parts[0] == "echo":
                self._answer(200, {"headers": headers, "body": body})
            else:
                self._answer(200, {"account": {"tier": "gold"}, "echo": body})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    me = TestHttpServer(server)
    state["server"] = me
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return me
