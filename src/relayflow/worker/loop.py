"""poll → claim due runs → advance → sleep, with lease heartbeats and a graceful stop.

A worker walks LANES batches at once, each in its own thread: a batch spends most of its
life waiting on its effects (INTEGRATION calls, messages), and a run that falls due
meanwhile is claimed by an idle lane at once instead of waiting for that batch to end.
Together the lanes keep at most `worker_concurrency` runs in flight. Every lane answers a
wake (a run enqueued in this process, or a NOTIFY on PostgreSQL, which a listener thread
turns into a wake); the first lane also fires schedules and background cancels.

The same loop fires schedule ticks, at most every `schedule_poll_seconds`. Every worker
does; the runs' idempotency keys keep several of them from doubling a tick.

A database that goes away (a restart, a network cut) is waited out, never a reason to
exit: the loop retries with a doubling pause up to `database_retry_max_seconds`, and the
outage is logged once when it starts and once when it ends. Whatever a batch had not
committed is lost with the connection; its leases expire and a worker claims the runs
again, resuming them from what was committed."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.exc import SQLAlchemyError

from relayflow.config import Settings
from relayflow.faults import crash_point
from relayflow.services import bulk as bulk_service
from relayflow.services import resend as resend_service
from relayflow.services import retention as retention_service
from relayflow.services import run_history, walk
from relayflow.services import schedule as schedule_service
from relayflow.services import workers as workers_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.services.workers import Lease
from relayflow.storage.db import is_conflict, is_unavailable, session_scope
from relayflow.storage.notify import Listener
from relayflow.telemetry import metrics

log = logging.getLogger(__name__)
# After each batch of a background cancel, the worker leaves the database alone this long:
# a request waiting for SQLite's write lock retries every 100 ms at most (its busy
# handler's longest sleep), so it gets in between two batches instead of waiting out all.
CANCEL_PAUSE_SECONDS = 0.1
# Batches a worker walks at once (see above).
LANES = 2
# How often the first lane folds run count changes into the hourly rollup
# (services/run_history.fold_counts): counts are exact without it, and cheaper to read
# the fewer changes wait.
FOLD_SECONDS = 1.0
# How often a worker makes the partitions of the coming months (PostgreSQL,
# services/retention.make_months).
PARTITIONS_SECONDS = 3600.0
# Changes folded between two vacuums of the changes tables (PostgreSQL, rollup.vacuum).
VACUUM_AFTER = 20_000


class Outage:
    """Whether the database is away, shared by the worker's threads, so that an outage is
    one warning when it starts and one when it ends instead of a traceback per retry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    def begin(self, exc: BaseException, doing: str) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        metrics.database_outage()
        log.warning("database unavailable while %s (%s); retrying until it is back",
                    doing, _describe(exc))

    def end(self) -> None:
        with self._lock:
            if self._since is None:
                return
            seconds, self._since = time.monotonic() - self._since, None
        log.warning("database reachable again after %.1f s", seconds)


def _describe(exc: BaseException) -> str:
    """The error's class and the first line of the driver's message (which names the
    host and port, never the password)."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).splitlines() or [""])[0][:200]
    return f"{type(cause).__name__}: {first}"


class Worker:
    def __init__(self, runtime: Runtime, settings: Settings, *, name: str | None = None) -> None:
        metrics.warm()  # not in the first batch's time
        self.runtime = runtime
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self._held: dict[int, list[Lease]] = {}  # by lane
        self._held_lock = threading.Lock()
        self._next_schedule = 0.0  # time.monotonic() of the next schedule check
        self._next_sweep = 0.0  # and of the next look for runs of a deactivated workflow
        self._next_fold = 0.0  # and of the next fold of run counts
        self._next_partitions = 0.0  # and of the next look at the coming months' partitions
        self._next_bulk = 0.0  # and of the next look for a bulk operation to act on
        self._folded = 0  # count changes folded since the last vacuum
        self.outage = Outage()
        # The batch's effects run here side by side (see services/effects.py); with a
        # concurrency of 1, one run at a time, each effect fenced just before it starts.
        concurrency = max(1, settings.worker_concurrency)
        self.pool = (ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="relayflow-effect")
                     if concurrency > 1 else None)
        # Without a pool, one lane: one run at a time is the point of a concurrency of 1.
        self.lanes = LANES if self.pool is not None and concurrency >= LANES else 1
        self.claim_limit = (max(1, min(settings.batch_size, concurrency // self.lanes))
                            if self.pool else max(1, settings.batch_size))

    def wake(self) -> None:
        """Ask for an immediate poll (a run was just enqueued: in this process, or by serve
        through its pipe, worker/process.py)."""
        self.wake_event.set()

    def run_once(self, lane: int = 0) -> int:
        def on_claim(walkers: list[walk.RunWalker]) -> None:
            crash_point("after_claim")
            with self._held_lock:
                self._held[lane] = [Lease(w.run_id, w.token) for w in walkers]

        try:
            return walk.advance(
                self.runtime, worker=self.name,
                limit=self.claim_limit,
                lease_seconds=self.settings.lease_seconds, on_claim=on_claim,
                pool=self.pool)
        finally:
            with self._held_lock:
                self._held.pop(lane, None)

    def cancel_once(self) -> int:
        """Cancel one batch of a deactivated workflow's runs, in its own short transaction
        (SQLite's write lock is held for one batch, then other work has its turn); returns
        how many runs it canceled. With nothing to cancel it looks again only after a poll
        interval: on SQLite every transaction takes the write lock, even one that only reads."""
        if time.monotonic() < self._next_sweep:
            return 0
        with session_scope(self.runtime.sessions) as session:
            canceled = workflow_service.sweep(session, now=self.runtime.clock(),
                                              limit=self.runtime.cancel_batch_size)
        if canceled:
            self.stop_event.wait(CANCEL_PAUSE_SECONDS)
        else:
            self._next_sweep = time.monotonic() + self.settings.poll_seconds
        return canceled

    def bulk_once(self) -> int:
        """Act on an open bulk operation, as far as its pace allows; how many runs. With
        nothing to act on now, look again only after a poll interval: a busy worker would
        otherwise read bulk_operations after every batch it walks."""
        if time.monotonic() < self._next_bulk:
            return 0
        acted = bulk_service.advance(self.runtime, worker=self.name,
                                     lease_seconds=self.settings.lease_seconds)
        if not acted:
            self._next_bulk = time.monotonic() + self.settings.poll_seconds
        return acted

    def schedule_once(self) -> int:
        """Fire due schedule ticks if `schedule_poll_seconds` have passed since the last
        look; returns how many runs that opened."""
        if time.monotonic() < self._next_schedule:
            return 0
        self._next_schedule = time.monotonic() + self.settings.schedule_poll_seconds
        try:
            fired = schedule_service.tick(self.runtime, now=self.runtime.clock())
        except Exception as exc:  # like a failed iteration: the next check tries again
            self._report(exc, "schedule tick", doing="firing schedules")
            return 0
        self.outage.end()
        return fired

    def fold_once(self) -> int:
        """Fold count changes if FOLD_SECONDS have passed since the last fold (and vacuum
        their table after every VACUUM_AFTER); how many were folded."""
        if time.monotonic() < self._next_fold:
            return 0
        self._next_fold = time.monotonic() + FOLD_SECONDS
        try:
            folded = run_history.fold_counts(self.runtime.sessions)
            self._folded += folded
            if self._folded >= VACUUM_AFTER:
                self._folded = 0
                run_history.vacuum_counts(self.runtime.sessions)
        except Exception as exc:  # like a failed iteration: the next fold tries again
            self._report(exc, "run count fold", doing="folding run counts")
            return 0
        self.outage.end()
        return folded

    def partitions_once(self) -> list[str]:
        """Make the coming months' partitions, if PARTITIONS_SECONDS have passed since the
        last look; the partitions made."""
        if time.monotonic() < self._next_partitions:
            return []
        self._next_partitions = time.monotonic() + PARTITIONS_SECONDS
        try:
            made = retention_service.make_months(self.runtime.sessions)
        except Exception as exc:  # tried again at the next look; inserts never need them
            self._report(exc, "partition upkeep", doing="making partitions")
            return []
        if made:
            log.info("made partitions %s", ", ".join(made))
        return made

    def _idle_seconds(self) -> float:
        """The poll wait, cut short when a schedule check falls due sooner."""
        until_schedule = max(0.0, self._next_schedule - time.monotonic())
        return min(self.settings.poll_seconds, until_schedule)

    def _heartbeat(self) -> None:
        while not self.stop_event.wait(self.settings.heartbeat_seconds):
            self._beat()

    def _beat(self) -> None:
        """Tell the database this worker is alive and extend the leases it holds."""
        with self._held_lock:
            held = [lease for leases in self._held.values() for lease in leases]
        try:
            workers_service.beat(self.runtime, name=self.name, leases=held,
                                 lease_seconds=self.settings.lease_seconds)
        except Exception as exc:  # a missed heartbeat is retried; the fence keeps us safe
            self._report(exc, "lease heartbeat", doing="renewing leases")
        else:
            self.outage.end()

    def run_forever(self) -> None:
        log.info("worker %s started", self.name)
        self._beat()
        beat = threading.Thread(target=self._heartbeat, name="relayflow-heartbeat", daemon=True)
        beat.start()
        bind = self.runtime.sessions.kw.get("bind")
        listener = None if bind is None else Listener.for_engine(
            bind, retry_max_seconds=self.settings.database_retry_max_seconds)
        helpers = [threading.Thread(target=self._lane, args=(n,), name=f"relayflow-lane-{n}",
                                    daemon=True) for n in range(1, self.lanes)]
        if listener is not None:
            helpers.append(threading.Thread(target=self._listen, args=(listener,),
                                            name="relayflow-listen", daemon=True))
        for helper in helpers:
            helper.start()
        failures = 0
        while not self.stop_event.is_set():
            self.schedule_once()
            self.fold_once()
            self.partitions_once()
            try:
                claimed = self.run_once() + resend_service.send_queued(
                    self.runtime, lease_seconds=self.settings.lease_seconds)
                claimed += self.cancel_once()
                claimed += self.bulk_once()
            except Exception as exc:  # the loop survives anything; the fence keeps us safe
                failures += 1
                self.stop_event.wait(self._pause_after(exc, failures))
                continue
            failures = 0
            self.outage.end()
            if claimed == 0:
                self._idle(self._idle_seconds())
        for helper in helpers:
            helper.join()
        if listener is not None:
            listener.close()
        try:
            workers_service.forget(self.runtime, name=self.name)
        except Exception as exc:  # its beat ages out instead
            self._report(exc, "worker sign-off", doing="stopping")
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        log.info("worker %s stopped", self.name)

    def _pause_after(self, exc: Exception, failures: int) -> float:
        """Seconds to wait after a failed iteration: doubling while the database is away,
        a poll's wait after the database broke a deadlock (the runs of the batch return
        when their leases expire), a second after anything else."""
        self._report(exc, "worker iteration", doing="claiming and walking runs")
        if is_unavailable(exc):
            return min(self.settings.database_retry_max_seconds, 0.25 * 2.0 ** failures)
        return self.settings.poll_seconds if is_conflict(exc) else 1.0

    def _report(self, exc: Exception, what: str, *, doing: str) -> None:
        """An outage is logged once (see Outage), a transaction the database rolled back
        to break a deadlock in one line, anything else with its traceback."""
        if isinstance(exc, SQLAlchemyError):
            metrics.database_error("unavailable" if is_unavailable(exc) else
                                   "conflict" if is_conflict(exc) else "other")
        if is_unavailable(exc):
            self.outage.begin(exc, doing)
        elif is_conflict(exc):
            log.warning("%s rolled back by the database (%s); trying again", what,
                        _describe(exc))
        else:
            log.exception("%s failed", what)

    def _lane(self, lane: int) -> None:
        """A lane after the first: claims and walks batches, idle until woken or polling."""
        failures = 0
        while not self.stop_event.is_set():
            try:
                claimed = self.run_once(lane)
            except Exception as exc:  # as in run_forever
                failures += 1
                self.stop_event.wait(self._pause_after(exc, failures))
                continue
            failures = 0
            if claimed == 0:
                self._idle(self.settings.poll_seconds)

    def _idle(self, seconds: float) -> None:
        """Until a wake or `seconds`; the wake is taken (every idle lane sees it). A stop is
        never taken: a lane that falls idle after another took the stop's wake would
        otherwise wait out its whole poll before it stopped."""
        self.wake_event.wait(seconds)
        self.wake_event.clear()
        if self.stop_event.is_set():
            self.wake_event.set()

    def _listen(self, listener: Listener) -> None:
        """NOTIFYs (runs enqueued by other processes) as wakes. Short slices, so a stop
        request is noticed within half a second."""
        while not self.stop_event.is_set():
            if listener.wait(0.5):
                self.wake_event.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()
