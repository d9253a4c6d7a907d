"""The ASGI application: JSON API, health check, error rendering and the worker beside it.

The worker is given, not imported (web and worker are sibling layers): `relayflow serve`
passes a factory, which builds its worker processes (worker/process.py), or on an in-memory
database a worker on the app's runtime."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from relayflow.config import Settings
from relayflow.services.runtime import Runtime
from relayflow.telemetry import metrics
from relayflow.web import api, api_docs, callbacks, errors, hooks, operations, pages, unsubscribe
from relayflow.web.concurrency import ConcurrencyLimitMiddleware
from relayflow.web.intake import Intake
from relayflow.web.limits import BodyLimitMiddleware
from relayflow.web.pages.templating import STATIC
from relayflow.web.security import SecurityHeadersMiddleware

log = logging.getLogger(__name__)


class EmbeddedWorker(Protocol):
    """What the app needs of a worker it runs beside itself (worker.loop.Worker, or
    worker.process.WorkerProcesses)."""

    def run_forever(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None: ...


def create_app(
    settings: Settings, *, runtime: Runtime | None = None,
    worker: Callable[[Runtime], EmbeddedWorker] | None = None,
) -> FastAPI:
    """The app; with `worker`, what it builds on the app's runtime runs (its run_forever in
    a thread) for the app's lifetime."""
    metrics.warm()
    owns_runtime = runtime is None
    runtime = runtime or Runtime.from_settings(settings)
    embedded = worker(runtime) if worker is not None else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        thread = None
        if embedded is not None:
            thread = threading.Thread(
                target=embedded.run_forever, name="relayflow-worker", daemon=True
            )
            thread.start()
        try:
            yield
        finally:
            if embedded is not None and thread is not None:
                embedded.stop()
                # A step in flight finishes first; past the lease another worker resumes it.
                thread.join(timeout=settings.lease_seconds)
                if thread.is_alive():
                    log.warning("the worker did not stop within the lease")
            probe = getattr(_app.state, "probe", None)
            if probe is not None:
                probe.close()
            if owns_runtime:
                runtime.dispose()

    app = FastAPI(
        title="relayflow",
        summary="Contact-automation orchestrator: workflows, runs and deliveries.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # served by api_docs, from installed files, under the pages' CSP
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.worker = embedded
    app.state.settings = settings
    app.state.intake = Intake(runtime, per_minute=settings.rate_limit_webhook_per_minute,
                              phone_region=settings.default_phone_region,
                              committed=embedded.wake if embedded is not None else None,
                              in_flight=2 if runtime.dialect.name == "postgresql" else 1)
    errors.install(app)
    # Last added is outermost. The concurrency bound sits inside the body reader: a slot is
    # taken only once the whole body is in, so clients that declare a body and never send
    # it wait in the reader (each until its deadline), not in the queue for a slot.
    app.add_middleware(ConcurrencyLimitMiddleware, limit=settings.max_concurrent_requests,
                       unbounded=(hooks.PREFIX, *operations.PATHS))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       timeout=settings.body_read_timeout_seconds)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(operations.RequestMetrics)  # outermost: refusals are timed too
    # Routes are matched in the order they were included, one pattern at a time: the
    # busiest, called by machines, come before the hundred of the API.
    app.include_router(hooks.router)
    app.include_router(operations.router)
    app.include_router(callbacks.router)
    app.include_router(unsubscribe.router)
    app.include_router(api.router)
    app.include_router(api_docs.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app
