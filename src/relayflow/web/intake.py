"""Webhook requests that arrive together are written together (group commit).

A request handler hands its request to the app's Intake and awaits the answer. A batch goes
to the database in a worker thread, as one transaction (services.webhook.receive_many); the
requests that arrive meanwhile wait and form the next batch. Under load a batch holds as
many requests as are waiting, so a webhook costs a fraction of a transaction instead of
two; alone, a request is written at once.

`in_flight` batches may be written at the same time. On SQLite one is right: the file has one
writer, and a second batch would only queue for it. On PostgreSQL most of a batch's time is
its COMMIT waiting for the write-ahead log to reach the disk, and a second batch written
meanwhile shares that wait (the server flushes both commits at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from anyio import to_thread

from relayflow.services import webhook as webhook_service
from relayflow.services.runtime import Runtime
from relayflow.services.webhook import Accepted, Inbound
from relayflow.telemetry import metrics


class Intake:
    def __init__(self, runtime: Runtime, *, per_minute: int, phone_region: str | None,
                 committed: Callable[[], None] | None = None, max_batch: int = 256,
                 in_flight: int = 1) -> None:
        self._runtime = runtime
        self._per_minute = per_minute
        self._phone_region = phone_region
        self._committed = committed  # called after a batch that opened runs, e.g. a worker wake
        self._max_batch = max_batch
        self._waiting: list[tuple[Inbound, asyncio.Future[Accepted | Exception]]] = []
        self._in_flight = max(1, in_flight)
        self._draining = 0  # drain tasks running

    @property
    def in_flight(self) -> int:
        """How many batches may be written at the same time."""
        return self._in_flight

    async def receive(self, request: Inbound) -> Accepted:
        """The request's answer once its batch is committed; raises what it alone would."""
        answer: asyncio.Future[Accepted | Exception] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, answer))
        if self._draining < self._in_flight:
            self._draining += 1
            asyncio.get_running_loop().create_task(self._drain())
        result = await answer
        if isinstance(result, Exception):
            metrics.webhook("rejected", _reason(result))
            raise result
        metrics.webhook("duplicate" if result.enrolled.duplicate else "accepted")
        return result

    async def _drain(self) -> None:
        try:
            # Handlers that are ready to run join this batch before it leaves.
            await asyncio.sleep(0)
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                try:
                    answers = await to_thread.run_sync(self._write, [r for r, _ in batch])
                except Exception as exc:  # the commit (or the database) failed for all
                    answers = [exc] * len(batch)
                except BaseException:  # cancelled: the app is going away
                    for _, answer in batch:
                        answer.cancel()
                    raise
                for (_, answer), result in zip(batch, answers, strict=True):
                    if not answer.done():
                        answer.set_result(result)
        finally:
            self._draining -= 1
            if not self._draining:
                for _, answer in self._waiting:  # only if the loop itself is going away
                    if not answer.done():
                        answer.cancel()
                self._waiting.clear()

    def _write(self, requests: list[Inbound]) -> list[Accepted | Exception]:
        answers = webhook_service.receive_many(
            self._runtime.sessions, requests, cipher=self._runtime.cipher,
            clock=self._runtime.clock, per_minute=self._per_minute,
            phone_region=self._phone_region)
        opened = any(isinstance(a, Accepted) and not a.enrolled.duplicate for a in answers)
        if opened and self._committed is not None:
            self._committed()  # only after the commit: a worker woken earlier would see nothing
        return answers


def _reason(error: Exception) -> str:
    """A refusal's kind for the metrics: its error class (NotFound, Unauthorized,
    RateLimited, InvalidInput, ...), a fixed vocabulary."""
    return type(error).__name__
