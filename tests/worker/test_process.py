"""`relayflow serve` runs its workers as child processes (worker/process.py): real serve
processes, killed as an operator or a crash would kill them."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from relayflow.storage.db import in_memory
from relayflow.worker.process import AUTO_MAX_PROCESSES, WorkerProcesses, process_count
from tests.support.flows import install
from tests.support.processes import wait_until
from tests.support.server import Served, serve

PING = {"key": "ping", "name": "Ping", "trigger": {"type": "webhook"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}
# Far longer than any wait below: a run that completes within them was woken, not polled.
POLL_SECONDS = "60"


def _children(pid: int) -> dict[int, int]:
    """The worker processes whose parent is `pid`, with their nice values."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == pid and b"worker" in command:
            found[int(entry.name)] = int(fields[16])
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _fire(served: Served, headers: dict[str, str]) -> str:
    with httpx.Client(base_url=f"http://127.0.0.1:{served.port}", headers=headers,
                      timeout=30) as client:
        url = client.get("/api/v1/workflows/ping").json()["webhook_url"]
        answer = client.post(f"/hooks/{url.rsplit('/', 1)[1]}", json={"n": 1})
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["id"]
        wait_until(
            lambda: client.get(f"/api/v1/runs/{run_id}").json()["status"] == "COMPLETED",
            timeout=15, what="the webhook's run to complete")
        return run_id


@pytest.fixture
def ping(runtime, workspace):
    install(runtime, workspace.id, PING)
    return workspace


@contextmanager
def _serving(db_url: str, tmp_path: Path, processes: int) -> Iterator[tuple[Served, list[int]]]:
    """serve with `processes` workers, once they are all started; and their pids."""
    with serve(db_url, tmp_path, serve_worker_processes=str(processes),
               poll_seconds=POLL_SECONDS, schedule_poll_seconds=POLL_SECONDS) as served:
        wait_until(lambda: len(_children(served.process.pid)) == processes, timeout=15,
                   what=f"{processes} worker processes")
        yield served, list(_children(served.process.pid))


def test_serve_walks_runs_in_worker_processes_of_lower_priority(db_url, ping, tmp_path):
    with _serving(db_url, tmp_path, 2) as (served, _):
        assert set(_children(served.process.pid).values()) == {10}

        _fire(served, ping.headers)  # woken through the pipe, or it would wait a minute
        _fire(served, ping.headers)


def test_a_killed_serve_leaves_no_worker_behind(db_url, ping, tmp_path):
    with _serving(db_url, tmp_path, 2) as (served, workers):
        served.process.send_signal(signal.SIGKILL)
        served.process.wait()

        wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=15,
                   what="the workers to stop once serve is gone")


def test_a_worker_that_dies_is_replaced(db_url, ping, tmp_path):
    with _serving(db_url, tmp_path, 1) as (served, (victim,)):
        os.kill(victim, signal.SIGKILL)

        wait_until(lambda: set(_children(served.process.pid)) - {victim}, timeout=15,
                   what="another worker process")
        _fire(served, ping.headers)
        assert f"worker process {victim} exited unexpectedly (killed by signal 9)" in \
            served.stderr()


def test_a_stopped_serve_stops_its_workers_and_exits_cleanly(db_url, ping, tmp_path):
    with _serving(db_url, tmp_path, 2) as (served, workers):
        _fire(served, ping.headers)

        served.process.send_signal(signal.SIGTERM)

        # uvicorn raises the signal again once it has shut down
        assert served.process.wait(30) in (0, -signal.SIGTERM)
        assert not any(_alive(pid) for pid in workers)
        assert "Finished server process" in served.stderr()
        assert "unexpectedly" not in served.stderr()


# Stands in for `relayflow worker` where only the pipe is under test: writes what it reads.
PROBE = """
import os, sys
fd = int(sys.argv[sys.argv.index("--wake-fd") + 1])
with open(sys.argv[1], "a", buffering=1) as out:
    while data := os.read(fd, 512):
        out.write(f"wake {len(data)}\\n")
"""


def test_a_wake_reaches_a_child_through_the_pipe(tmp_path):
    seen = tmp_path / "seen"
    seen.touch()
    group = WorkerProcesses(1, command=[sys.executable, "-c", PROBE, str(seen)])
    thread = threading.Thread(target=group.run_forever)
    thread.start()
    try:
        wait_until(lambda: group.pids, timeout=10, what="the child")
        group.wake()
        wait_until(lambda: "wake 1" in seen.read_text(), timeout=10, what="the wake")
        group.wake()
        wait_until(lambda: seen.read_text().count("wake") == 2, timeout=10,
                   what="the second wake")
    finally:
        group.stop()
        thread.join(10)
    assert not thread.is_alive()


@pytest.mark.parametrize(("url", "private"), [
    ("sqlite://", True),
    ("sqlite:///:memory:", True),
    ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", True),
    ("sqlite:///./relayflow.db", False),
    ("sqlite:////var/lib/relayflow/relayflow.db", False),
    ("postgresql://postgres@127.0.0.1:5432/postgres", False),
])
def test_an_in_memory_database_keeps_the_worker_in_serve(url, private):
    assert in_memory(url) is private


@pytest.mark.parametrize(("setting", "cores", "expected"), [
    (0, 1, 1), (0, 2, 1), (0, 3, 2), (0, 64, AUTO_MAX_PROCESSES), (3, 2, 3), (1, 64, 1)])
def test_by_default_one_worker_per_core_the_web_server_leaves(
        setting: int, cores: int, expected: int) -> None:
    """The web server is a process of its own and keeps a core busy under load: one worker
    per core would make three processes share two cores."""
    assert process_count(setting, cores) == expected
