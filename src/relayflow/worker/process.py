"""The workers of `relayflow serve`, in processes of their own beside the web server.

Python runs one thread of Python code at a time per process. With the worker as a thread of
the web server, every webhook answer waited its turn behind the worker's Python, and the
worker, however many effects it had in flight, used one core at most. So `serve` starts
`relayflow worker` children (Settings.serve_worker_processes; by default one per core but
the one the web server needs, at least one) and looks after them:

- The children run at a lower CPU priority (nice WORKER_NICE): a request is answered
  first, and the workers walk runs with every cycle the web server leaves. On an idle
  machine that is all of them; under a burst the runs wait in the queue, which is
  durable, instead of the clients waiting for their answers.
- A request that enqueued a run wakes a child through a pipe (SQLite has no NOTIFY;
  PostgreSQL's NOTIFY wakes them as well). When serve ends, even killed, the pipe closes
  and each child stops as a worker told to stop does: it finishes the effects in flight,
  records them and exits, so no worker outlives the server.
- A child that exits on its own (a crash) is started again, after a pause that doubles
  while it keeps failing. What it held returns to the queue when its leases expire.

The database must be reachable from every process, so an in-memory SQLite database keeps
the worker in serve's own process (see relayflow.cli).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from contextlib import suppress

from relayflow.worker.loop import Worker

log = logging.getLogger(__name__)

WORKER_NICE = 10
# Worker processes when Settings.serve_worker_processes is 0: one per core but the web
# server's, at least one and at most this many. On two cores one worker beside the web
# server did 294-314 runs/s (SQLite) and 227-236 (PostgreSQL) in bench/e2e.py using
# 183-192 MiB together; a second one added a third of the throughput and 75 MiB.
AUTO_MAX_PROCESSES = 4
# A child that exits is started again after RESTART_PAUSE_SECONDS; the pause doubles each
# time one dies within HEALTHY_AFTER_SECONDS of its start, up to the maximum.
HEALTHY_AFTER_SECONDS = 30.0
RESTART_PAUSE_SECONDS = 1.0
RESTART_PAUSE_MAX_SECONDS = 30.0


def process_count(setting: int, cores: int | None = None) -> int:
    """The setting, or for 0 the default for this many cores (this machine's)."""
    if setting > 0:
        return setting
    return max(1, min((cores or os.cpu_count() or 1) - 1, AUTO_MAX_PROCESSES))


class WorkerProcesses:
    """`count` `relayflow worker` children with the interface of an embedded worker
    (run_forever, stop, wake): run_forever starts them, waits for them and restarts any
    that exits, until stop().

    The children share one pipe. A wake is one byte, read by one of them; the pipe's
    writing end is serve's alone, so it closes for all of them when serve ends."""

    def __init__(self, count: int, *, command: list[str] | None = None) -> None:
        self.count = max(1, count)
        self.command = command or [sys.executable, "-m", "relayflow", "worker"]
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the children and the pipe's writing end
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # by slot
        self._read_fd, self._wake_fd = os.pipe()
        os.set_blocking(self._wake_fd, False)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [child.pid for child in self._children.values()]

    def run_forever(self) -> None:
        slots = [threading.Thread(target=self._supervise, args=(slot,),
                                  name=f"relayflow-worker-{slot}", daemon=True)
                 for slot in range(1, self.count)]
        for thread in slots:
            thread.start()
        self._supervise(0)
        for thread in slots:
            thread.join()

    def _supervise(self, slot: int) -> None:
        """One child at a time in this slot, started again whenever it exits."""
        pause = RESTART_PAUSE_SECONDS
        while True:
            started = time.monotonic()
            child = self._start(slot)
            if child is None:
                return
            code = child.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= HEALTHY_AFTER_SECONDS:
                pause = RESTART_PAUSE_SECONDS
            log.error("worker process %d exited unexpectedly (%s); starting another in %.0f s",
                      child.pid, _exit_reason(code), pause)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, RESTART_PAUSE_MAX_SECONDS)

    def _start(self, slot: int) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            # stdout and stderr are serve's own; the pipe is the child's only extra fd.
            child = subprocess.Popen([*self.command, "--wake-fd", str(self._read_fd)],
                                     pass_fds=(self._read_fd,))
            self._children[slot] = child
        # On Linux this is the priority of the child's main thread; the child is still
        # importing and has started no other, so every thread it starts inherits it.
        with suppress(OSError):  # already gone: _supervise sees it exit
            os.setpriority(os.PRIO_PROCESS, child.pid, WORKER_NICE)
        return child

    def wake(self) -> None:
        """Ask a child for an immediate poll (a run was just enqueued)."""
        # A full pipe holds wakes already; a broken one means no child is there to wake.
        with suppress(BlockingIOError, BrokenPipeError):
            os.write(self._wake_fd, b"\x01")

    def stop(self) -> None:
        """SIGTERM to the children: each finishes what it has in flight and exits;
        run_forever returns once all have."""
        with self._lock:
            self._stopping.set()
            for child in self._children.values():
                if child.poll() is None:
                    child.terminate()


def _exit_reason(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def follow_parent(fd: int, worker: Worker) -> threading.Thread:
    """In the child: a thread that turns bytes on the pipe into wakes, and its closing (the
    parent is gone) into a stop."""

    def _follow() -> None:
        while True:
            try:
                data = os.read(fd, 512)
            except OSError:
                data = b""
            if not data:
                if not worker.stop_event.is_set():
                    log.warning("relayflow serve is gone; the worker stops")
                    worker.stop()
                return
            worker.wake()

    thread = threading.Thread(target=_follow, name="relayflow-parent", daemon=True)
    thread.start()
    return thread
