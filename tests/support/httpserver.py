"""A small real HTTP server on 127.0.0.1 for INTEGRATION tests.

Paths:
  /json            200 {"account": {"tier": "gold"}, "echo": <request body>}
  /status/<code>   answers that status
  /slow/<seconds>  sleeps, then 200
  /flaky/<n>       the first n requests with a given Idempotency-Key get 503, then 200
  /echo            200 with the request headers and body (to test redaction of echoes)
  /redirect?to=URL&status=302   a redirect to URL (to test that every hop is checked)
  /reflect/<code>  answers <code> echoing everything it got, decoded and re-encoded (Basic
                   credentials decoded; each header, query value and the body as base64 at
                   three byte offsets, percent-encoded and JSON-escaped), in the body and in
                   X-Reflect-* headers; JSON below 400, an error text above (secret canaries)
  /messages        a messaging provider: 201 {"id": "msg-N"} once per Idempotency-Key, then
                   200 with the same id for a repeat (which is not delivered again)
  /ratelimited/<seconds>[/date]   a rate-limited /messages: the first request to the path
                   is 429 with Retry-After (delta-seconds, or an HTTP-date with /date), and
                   so is every request before that time; later ones are /messages
Every request is recorded (method, path, headers, body, the time it arrived). Requests carrying an
Idempotency-Key already seen are counted in `replays` (the de-duplicating provider a
well-behaved integration target would be).
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    at: float = field(default_factory=time.time)  # when it arrived (wall clock)
    peer: int = 0  # the client's port: one per connection


@dataclass
class TestHttpServer:
    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    flaky_counts: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> message id
    limited_until: dict[str, float] = field(default_factory=dict)  # /ratelimited path -> time

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def keys(self) -> list[str]:
        return [r.headers.get("Idempotency-Key", "") for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _encodings(value: str) -> dict[str, str]:
    """A value as an echoing server might give it back: base64 at each byte offset inside a
    longer run, percent-encoded, JSON-escaped."""
    data = value.encode()
    out = {f"b64_{n}": base64.b64encode(b"x=:"[:n] + data + b";").decode() for n in range(3)}
    out |= {f"b64url_{n}": base64.urlsafe_b64encode(b"x=:"[:n] + data).decode().rstrip("=")
            for n in range(3)}
    return out | {"quote": quote(value, safe=""), "quote_plus": quote_plus(value),
                  "json": json.dumps(value)}


def _reflection(path: str, headers: dict[str, str], body: str) -> dict[str, Any]:
    query = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
    auth = headers.get("Authorization", "")
    basic = ""
    if auth.startswith("Basic "):
        basic = base64.b64decode(auth[6:]).decode(errors="replace")
    values = {**{f"header {k}": v for k, v in headers.items()},
              **{f"query {k}": v for k, v in query.items()}, "body": body, "basic": basic}
    return {"path": path, "headers": headers, "query": query, "body": body, "basic": basic,
            "encoded": {name: _encodings(v) for name, v in values.items() if v}}


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

        def _reflect(self, status: int, reflection: dict[str, Any]) -> None:
            text = json.dumps(reflection)
            if status >= 400:
                text = f"request refused: {reflection['headers'].get('Authorization')} {text}"
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type",
                             "application/json" if status < 400 else "text/plain")
            for name, forms in reflection["encoded"].items():
                if name.startswith("query") or name in ("basic", "header Authorization"):
                    for form, encoded in forms.items():
                        if form != "json" and len(encoded) < 2000:
                            self.send_header(f"X-Reflect-{form}-{len(name)}", encoded)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _deliver(self, headers: dict[str, str]) -> None:
            me = state["server"]
            key = headers.get("Idempotency-Key", "")
            with me.lock:
                repeat = key in me.delivered
                if not repeat:
                    me.delivered[key] = f"msg-{len(me.delivered) + 1}"
            self._answer(200 if repeat else 201, {"id": me.delivered[key]})

        def _rate_limited(self, parts: list[str], headers: dict[str, str]) -> None:
            me, now = state["server"], time.time()
            as_date = parts[-1] == "date"
            with me.lock:
                until = me.limited_until.get(self.path)
                if until is None:
                    until = now + float(parts[1])
                    # A date has whole seconds: the limit ends exactly at the date sent.
                    me.limited_until[self.path] = until = math.ceil(until) if as_date else until
            if now >= until:
                self._deliver(headers)
                return
            value = (formatdate(until, usegmt=True) if as_date
                     else str(math.ceil(until - now)))
            data = json.dumps({"error": "rate limited"}).encode()
            self.send_response(429)
            self.send_header("Retry-After", value)
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
                me.requests.append(Recorded(self.command, self.path, headers, body,
                                            peer=self.client_address[1]))
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
                self._deliver(headers)
            elif parts[0] == "ratelimited":
                self._rate_limited(parts, headers)
            elif parts[0].startswith("redirect"):
                query = parse_qs(urlsplit(self.path).query)
                self.send_response(int(query.get("status", ["302"])[0]))
                self.send_header("Location", query["to"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif parts[0] == "reflect":
                self._reflect(int(parts[1].split("?")[0]), _reflection(self.path, headers, body))
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
