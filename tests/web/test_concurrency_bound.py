"""The request bound (web/concurrency.py) holds back requests that need a thread and a
connection, never webhooks, which wait in the intake's batch instead."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from relayflow.web.concurrency import ConcurrencyLimitMiddleware
from relayflow.web.hooks import PREFIX


def _app(release: asyncio.Event, entered: asyncio.Event) -> ConcurrencyLimitMiddleware:
    async def slow(_: Request) -> PlainTextResponse:
        entered.set()
        await release.wait()
        return PlainTextResponse("slow")

    async def quick(_: Request) -> PlainTextResponse:
        return PlainTextResponse("quick")

    app = Starlette(routes=[Route("/api/slow", slow), Route("/api/quick", quick),
                            Route(PREFIX + "{token}", quick, methods=["POST"])])
    return ConcurrencyLimitMiddleware(app, limit=1, unbounded=(PREFIX,))


def test_webhooks_are_not_held_back_by_the_bound() -> None:
    async def scenario() -> tuple[int, bool, int]:
        release, entered = asyncio.Event(), asyncio.Event()
        transport = httpx.ASGITransport(app=_app(release, entered))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            holder = asyncio.create_task(http.get("/api/slow"))  # takes the only slot
            await asyncio.wait_for(entered.wait(), 10)
            hook = await asyncio.wait_for(http.post(PREFIX + "abc", content=b"{}"), 10)
            api = asyncio.create_task(http.get("/api/quick"))
            await asyncio.sleep(0.2)
            api_waited = not api.done()  # an API request waits for the slot
            release.set()
            await asyncio.wait_for(holder, 10)
            return hook.status_code, api_waited, (await asyncio.wait_for(api, 10)).status_code

    hook_status, api_waited, api_status = asyncio.run(scenario())
    assert hook_status == 200
    assert api_waited
    assert api_status == 200


def test_the_app_leaves_its_webhook_route_unbounded(app: FastAPI) -> None:
    """And its probes: a busy server still says it is alive, ready, and what it does."""
    [bound] = [m for m in app.user_middleware if m.cls is ConcurrencyLimitMiddleware]
    assert bound.kwargs["unbounded"] == (PREFIX, "/livez", "/readyz", "/healthz", "/metrics")
    assert app.url_path_for("hooks:receive", token="t") == PREFIX + "t"


def test_the_app_writes_two_webhook_batches_at_once_on_postgresql_only(
        app: FastAPI, is_postgres: bool) -> None:
    assert app.state.intake.in_flight == (2 if is_postgres else 1)
