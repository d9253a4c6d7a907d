from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from relayflow.web.limits import BodyLimitMiddleware

MIB = 1024 * 1024


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


class _Echo:
    """An ASGI app that records the body it receives and answers 200."""

    def __init__(self) -> None:
        self.called = False
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(app: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[
    list[Message], int
]:
    """Drive `app` with a body in `chunks`; returns what it sent and how many chunks it read."""
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
             for i, c in enumerate(chunks)]
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read < len(queue):
            read += 1
            return queue[read - 1]
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent, read


class TestBodyLimit:
    def test_declared_content_length_over_the_limit_is_413(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/workflows", content=b"x" * (2 * MIB),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PayloadTooLarge"
        assert client.get("/api/v1/workflows").json() == {"items": []}

    def test_chunked_body_over_the_limit_is_413(self, client: TestClient) -> None:
        response = client.post(
            "/api/v1/workflows", content=_chunks(2 * MIB),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PayloadTooLarge"

    def test_json_api_body_over_the_limit_is_413(self, client: TestClient) -> None:
        payload = json.dumps({"event": {"blob": "x" * (2 * MIB)}})

        response = client.post("/api/v1/workflows/onboarding/runs", content=payload,
                               headers={"Content-Type": "application/json"})

        assert response.status_code == 413

    def test_streamed_chunks_stop_being_read_past_the_limit(self) -> None:
        app = _Echo()
        chunks = list(_chunks(2 * MIB))

        sent, read = _call(BodyLimitMiddleware(app, max_bytes=MIB, timeout=10), chunks, headers=[])

        assert not app.called
        assert sent[0]["status"] == 413
        assert json.loads(sent[1]["body"])["error"]["code"] == "PayloadTooLarge"
        assert read == MIB // (64 * 1024) + 1

    def test_content_length_is_checked_before_reading(self) -> None:
        app = _Echo()

        sent, read = _call(BodyLimitMiddleware(app, max_bytes=MIB, timeout=10), [b"x"],
                           headers=[(b"content-length", str(2 * MIB).encode())])

        assert sent[0]["status"] == 413
        assert read == 0
        assert not app.called

    def test_body_at_the_limit_reaches_the_app_intact(self) -> None:
        app = _Echo()
        chunks = list(_chunks(MIB, size=100_000))

        sent, _ = _call(BodyLimitMiddleware(app, max_bytes=MIB, timeout=10), chunks, headers=[])

        assert sent[0]["status"] == 200
        assert app.body == b"".join(chunks)
