"""Bound how many requests are inside the app at once.

Sync dependencies and handlers run on a shared thread pool (40 threads), and a request
holds its database connection across several hops onto that pool. Without a bound, a
burst larger than the connection pool can leave every thread waiting for a connection
held by a request that is itself waiting for a thread: nothing moves until the pool's
timeout turns everything into 500s. Admitting at most `limit` requests (fewer than both
the threads and the connections) makes that impossible; the rest wait, cheaply, on an
asyncio semaphore.

The bound must sit inside the body reader (web/limits.py), never outside it: a slot held
while a body arrives would let a handful of clients that declare a body and never send it
take every slot, and every route, /healthz included, would wait behind them.

Webhooks (`unbounded` paths) are not counted: their handler holds neither a thread nor a
connection, it waits for the intake's batch (web/intake.py), which writes every waiting
webhook with one thread and one connection. Counted, a burst of webhooks was cut into
batches of `limit` and each webhook waited for two batches instead of one.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send


class ConcurrencyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limit: int, unbounded: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.unbounded = unbounded  # path prefixes
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.unbounded):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # created on the server's event loop
            self._semaphore = asyncio.Semaphore(self.limit)
        async with self._semaphore:
            await self.app(scope, receive, send)
