"""poll → claim due runs → advance → sleep, with lease heartbeats and a graceful stop.

The same loop fires schedule ticks, at most every `schedule_poll_seconds`. Every worker
does; the runs' idempotency keys keep several of them from doubling a tick."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from relayflow.config import Settings
from relayflow.faults import crash_point
from relayflow.services import resend as resend_service
from relayflow.services import schedule as schedule_service
from relayflow.services import walk
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.notify import Listener
from relayflow.storage.repositories import job as job_repo
from relayflow.storage.repositories.job import Lease

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, runtime: Runtime, settings: Settings, *, name: str | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self._held: list[Lease] = []
        self._held_lock = threading.Lock()
        self._next_schedule = 0.0  # time.monotonic() of the next schedule check

    def wake(self) -> None:
        """Ask for an immediate poll (a run was just enqueued in this process)."""
        self.wake_event.set()

    def _on_claim(self, walkers: list[walk.RunWalker]) -> None:
        crash_point("after_claim")
        with self._held_lock:
            self._held = [Lease(w.run_id, w.token) for w in walkers]

    def run_once(self) -> int:
        try:
            return walk.advance(
                self.runtime, worker=self.name, limit=self.settings.batch_size,
                lease_seconds=self.settings.lease_seconds, on_claim=self._on_claim,
            )
        finally:
            with self._held_lock:
                self._held = []

    def schedule_once(self) -> int:
        """Fire due schedule ticks if `schedule_poll_seconds` have passed since the last
        look; returns how many runs that opened."""
        if time.monotonic() < self._next_schedule:
            return 0
        self._next_schedule = time.monotonic() + self.settings.schedule_poll_seconds
        try:
            return schedule_service.tick(self.runtime, now=self.runtime.clock())
        except Exception:  # like a failed iteration: log, and the next check tries again
            log.exception("schedule tick failed")
            return 0

    def _idle_seconds(self) -> float:
        """The poll wait, cut short when a schedule check falls due sooner."""
        until_schedule = max(0.0, self._next_schedule - time.monotonic())
        return min(self.settings.poll_seconds, until_schedule)

    def _heartbeat(self) -> None:
        while not self.stop_event.wait(self.settings.heartbeat_seconds):
            with self._held_lock:
                held = list(self._held)
            if not held:
                continue
            try:
                now = self.runtime.clock()
                with session_scope(self.runtime.sessions) as session:
                    job_repo.renew(session, worker=self.name, leases=held,
                                   until=now + timedelta(seconds=self.settings.lease_seconds))
            except Exception:  # a missed heartbeat is retried; the fence keeps us safe
                log.exception("lease heartbeat failed")

    def run_forever(self) -> None:
        log.info("worker %s started", self.name)
        beat = threading.Thread(target=self._heartbeat, name="relayflow-heartbeat", daemon=True)
        beat.start()
        bind = self.runtime.sessions.kw.get("bind")
        listener = Listener.for_engine(bind) if bind is not None else None
        while not self.stop_event.is_set():
            self.schedule_once()
            try:
                claimed = self.run_once() + resend_service.send_queued(self.runtime)
            except Exception:  # the loop must survive a database blip; the fence keeps us safe
                log.exception("worker iteration failed")
                claimed = 0
                self.stop_event.wait(1.0)
            if claimed == 0:
                idle = self._idle_seconds()
                if listener is not None and not self.wake_event.is_set():
                    self._listen(listener, idle)
                else:
                    self.wake_event.wait(idle)
                self.wake_event.clear()
        if listener is not None:
            listener.close()
        log.info("worker %s stopped", self.name)

    def _listen(self, listener: Listener, idle: float) -> None:
        # Short slices so a stop request is noticed within half a second.
        deadline = time.monotonic() + idle
        while not self.stop_event.is_set() and not self.wake_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or listener.wait(min(0.5, remaining)):
                return

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()
