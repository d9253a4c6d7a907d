"""What a platform asks of a running server: /livez, /readyz and /metrics, and the timing of
every HTTP request.

/livez answers as long as the process serves requests (restart it when it stops). /readyz
says whether it can do its work (services/health.py): 200, or 503 naming the checks that
failed, so a load balancer sends traffic elsewhere meanwhile. Neither needs a key; neither
says more than which check failed and why in a few words.

/metrics is Prometheus' text format (telemetry/metrics.py; docs/operations.md lists the
families). With RELAYFLOW_METRICS_TOKEN set it needs `Authorization: Bearer <token>`.

The database reads behind /readyz and the gauges of /metrics run on a thread of their own,
at most one of each at a time, and are given a second: an unreachable database (a connect
that would wait 10 s) is reported as such after one second instead of holding the probe,
and a probe repeated meanwhile waits on the same read instead of starting another.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayflow.services import health as health_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import is_unavailable
from relayflow.telemetry import metrics

router = APIRouter(tags=["health"], include_in_schema=True)
PATHS = ("/livez", "/readyz", "/healthz", "/metrics")
DATABASE_SECONDS = 1.0
T = TypeVar("T")


class Probe:
    """Database reads for probes, one at a time per kind, each waited on for a bounded
    time (see the module's docstring)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="relayflow-probe")
        self._running: dict[str, Future[Any]] = {}

    async def run(self, kind: str, read: Callable[[], T], *, seconds: float) -> T:
        """`read()`'s answer; TimeoutError after `seconds` (the read goes on, and the next
        call of the same kind waits for it rather than starting another)."""
        running = self._running.get(kind)
        if running is None or running.done():
            running = self._running[kind] = self._executor.submit(read)
        answer: T = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(running)),
                                           seconds)
        return answer

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _probe(request: Request) -> Probe:
    probe: Probe | None = getattr(request.app.state, "probe", None)
    if probe is None:
        probe = request.app.state.probe = Probe()
    return probe


@router.get("/livez", name="health:live", summary="The process answers")
@router.get("/healthz", name="health", summary="The process answers (as /livez)",
            include_in_schema=False)
def livez() -> dict[str, bool]:
    return {"ok": True}


@router.get("/readyz", name="health:ready", summary="The server can do its work",
            responses={503: {"description": "A check failed; `checks` says which and why"}})
async def readyz(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    runtime: Runtime = request.app.state.runtime
    expect = health_service.Expect(
        workers=request.app.state.worker is not None, lease_seconds=settings.lease_seconds,
        schedule_poll_seconds=settings.schedule_poll_seconds)
    try:
        checks = await _probe(request).run(
            "ready", lambda: health_service.readiness(runtime, expect),
            seconds=DATABASE_SECONDS)
    except TimeoutError:
        checks = [health_service.Check(
            "database", False, f"no answer within {DATABASE_SECONDS:g} s")]
    except Exception as exc:  # the database refused or failed the read
        checks = [health_service.Check("database", False, _failure(exc))]
    ok = all(check.ok for check in checks)
    body = {"ok": ok, "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks}}
    return JSONResponse(body, status_code=200 if ok else 503)


def _failure(exc: Exception) -> str:
    # The driver's message names hosts and users: the class alone, for an open endpoint.
    cause = getattr(exc, "orig", None) or exc
    what = "unreachable" if is_unavailable(exc) else "failed"
    return f"{what} ({type(cause).__name__})"


@router.get("/metrics", name="metrics", summary="Prometheus metrics",
            response_class=Response,
            responses={200: {"content": {"text/plain": {}}},
                       401: {"description": "RELAYFLOW_METRICS_TOKEN is set and the request "
                                            "does not carry it"}})
async def metrics_text(request: Request) -> Response:
    settings = request.app.state.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token and not _bearer_matches(request.headers.get("authorization"), token):
        return JSONResponse(
            {"error": {"code": "Unauthorized", "details": {},
                       "message": "This server's metrics need Authorization: Bearer <token> "
                                  "(RELAYFLOW_METRICS_TOKEN)."}},
            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    runtime: Runtime = request.app.state.runtime
    try:
        now = await _probe(request).run(
            "gauges", lambda: health_service.gauges(runtime, lease_seconds=settings.lease_seconds),
            seconds=DATABASE_SECONDS)
    except Exception:  # unreachable or too slow: said by relayflow_database_up
        now = None
    return Response(metrics.render(_gauges(now)), media_type=metrics.CONTENT_TYPE)


def _bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def _gauges(now: health_service.Gauges | None) -> list[Any]:
    """The families read from the database at the time of the scrape."""
    up = metrics.gauge("relayflow_database_up",
                       "1 when this server read the database within a second for this "
                       "scrape, else 0.", 0.0 if now is None else 1.0)
    if now is None:
        return [up]
    queue = now.queue
    return [
        up,
        metrics.gauges("relayflow_queue_jobs", "Unfinished runs' jobs: due (waiting for a "
                       "worker), leased (being walked), scheduled (due later).", "state",
                       {"due": queue.due, "leased": queue.leased,
                        "scheduled": queue.scheduled}),
        metrics.gauge("relayflow_queue_oldest_due_age_seconds",
                      "How long the longest-waiting due job has waited for a worker; 0 "
                      "when none waits.", now.oldest_due_seconds),
        metrics.gauge("relayflow_workers_alive",
                      "Workers that beat within two lease periods.", now.workers.alive),
        metrics.gauge("relayflow_worker_heartbeat_age_seconds",
                      "Seconds since the newest beat of any worker (+Inf: none ever).",
                      float("inf") if now.workers.newest_age is None
                      else now.workers.newest_age),
        metrics.gauge("relayflow_schedule_late_seconds",
                      "How long the most overdue schedule tick has waited to fire; 0 when "
                      "none is due.", now.schedule_late_seconds),
    ]


# Any other method a client makes up is counted as "other": labels stay bounded.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests refused before routing (too large, too slow) are labelled by these prefixes.
_UNROUTED = (("/hooks/", "/hooks/{token}"), ("/u/", "/u/{token}"), ("/static/", "/static"),
             ("/api/", "/api/unmatched"))


class RequestMetrics:
    """Times every HTTP request into relayflow_http_request_duration_seconds, labelled by
    its route's template (`/api/v1/runs/{run_id}`, never the values in it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            metrics.http_request(method, _template(scope), status,
                                 time.perf_counter() - started)


def _template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    for prefix, label in _UNROUTED:
        if scope["path"].startswith(prefix):
            return label
    return "unmatched"
