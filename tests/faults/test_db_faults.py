"""The database goes away under real workers: a 5 s cut, a 30 s cut, PostgreSQL restarts,
and a cut while a killed worker's runs are being recovered.

A private PostgreSQL cluster (tests/support/pgcluster.py) sits behind a TCP proxy
(tests/support/tcpproxy.py); the workers and this test reach the database only through
the proxy, so a cut resets every open connection and every new one. Two worker
processes serve the whole module: the same workers live through every fault.

A run is an HTTP call, a 1 s WAIT, a contact update, then END or STOP_ERROR. The first
scenario lets 15 runs finish (later ones find the runs of the scenarios before); each
then starts 35 runs and strikes while they are under way (HTTP calls in flight, runs
parked in their WAIT, others not yet claimed). After the restore it checks: every run
reached the terminal status its workflow gives it, no job is left (nothing stranded),
every step is recorded once, every run that was terminal before the fault is unchanged
row for row, and the workers are alive and logged the fault in a few records, none an
ERROR, rather than a flood.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine, func, select, text

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import make_engine, normalize_url, session_scope
from relayflow.storage.migrate import upgrade
from relayflow.storage.models import Contact, Job, RunStep, WorkflowRun
from relayflow.storage.notify import Listener, notify
from tests.conftest import WorkspaceHandle, make_workspace
from tests.support import pgcluster, tcpproxy
from tests.support.flows import install
from tests.support.processes import start_worker, stop, wait_until

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]
WARM_UP, UNDER_WAY = 15, 35  # runs finished before each fault, runs in flight during it
LEASE_SECONDS = 2.0
# The workers retry at most every second while the database is away, so the time to
# recover measures the recovery, not the back-off (5 s by default).
RETRY_MAX_SECONDS = 1.0
RECOVERY_LIMIT = 20.0  # seconds from the restore until every run is terminal
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")
# Log records a worker may write for one fault, none of them an ERROR: the outage
# starting and ending, the job listener losing and regaining its connection, and slack
# for the progress of a batch discarded because its leases expired meanwhile.
MAX_LOG_RECORDS = 12
_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
_slugs = itertools.count()


def _flow(url: str) -> dict:
    return {"key": "faults", "trigger": {"type": "manual"}, "start": "call", "nodes": {
        "call": {"type": "INTEGRATION", "request": {"method": "POST", "url": url},
                 "next": "pause"},
        "pause": {"type": "WAIT", "duration": "1s", "next": "tag"},
        "tag": {"type": "UPDATE_CONTACT", "set": {"seen": "yes"}, "next": "check"},
        "check": {"type": "CONDITION", "when": "event.n % 5 == 0", "then": "fail",
                  "else": "done"},
        "fail": {"type": "STOP_ERROR", "message": "run {{ event.n }} stops as designed"},
        "done": {"type": "END"}}}


def _expected(n: int) -> tuple[str, tuple[str, ...]]:
    """The terminal status and the nodes visited of the run started with event.n = n."""
    last = "fail" if n % 5 == 0 else "done"
    return ("FAILED" if n % 5 == 0 else "COMPLETED",
            ("trigger", "call", "pause", "tag", "check", last))


# --- the private cluster, the proxy, the workers ----------------------------------------


@dataclass
class Database:
    cluster: pgcluster.Cluster
    proxy: tcpproxy.TcpProxy
    url: str  # through the proxy


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    cluster = pgcluster.create()
    if cluster is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are missing (CI has them)")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    proxy = tcpproxy.start("127.0.0.1", cluster.port)
    try:
        admin = create_engine(normalize_url(cluster.url()), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text('CREATE DATABASE "relayflow"'))
        admin.dispose()
        upgrade(cluster.url("relayflow"))
        yield Database(cluster, proxy, f"postgresql://postgres@127.0.0.1:{proxy.port}/relayflow")
    finally:
        proxy.close()
        cluster.remove()


@pytest.fixture(scope="module")
def db_url(database: Database) -> str:
    """The module's database, through the proxy (this replaces tests/conftest.py's: the
    `settings` and `runtime` fixtures build on it)."""
    return database.url


@pytest.fixture
def workspace(runtime: Runtime) -> WorkspaceHandle:
    """One workspace per scenario in the module's database."""
    return make_workspace(runtime, f"faults-{next(_slugs)}")


@dataclass
class Workers:
    """The module's worker processes. A thread per worker drains its log (stderr) as it
    comes, so that even a flood is read instead of filling the pipe and stalling it."""

    settings: Settings
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    lines: dict[int, list[str]] = field(default_factory=dict)

    def start(self) -> subprocess.Popen[bytes]:
        os.environ["RELAYFLOW_DATABASE_RETRY_MAX_SECONDS"] = str(RETRY_MAX_SECONDS)
        try:  # the worker inherits this process's environment
            process = start_worker(self.settings, lease_seconds=LEASE_SECONDS)
        finally:
            del os.environ["RELAYFLOW_DATABASE_RETRY_MAX_SECONDS"]
        self.processes.append(process)
        self.lines[process.pid] = []
        threading.Thread(target=self._drain, args=(process,), daemon=True).start()
        return process

    def _drain(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.lines[process.pid].append(line.decode(errors="replace").rstrip("\n"))

    def replace(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.processes.remove(process)
        return self.start()

    def logs(self) -> list[list[str]]:
        """Each live worker's log lines since the last call, asserting it is still running
        (an outage must never make a worker exit)."""
        logs = []
        for process in self.processes:
            assert process.poll() is None, f"a worker exited with {process.returncode}"
            lines = self.lines[process.pid]
            logs.append(lines[:])
            del lines[:len(logs[-1])]
        return logs


@pytest.fixture(scope="module")
def workers(database: Database) -> Iterator[Workers]:
    # What tests/conftest.py's `settings` gives workers: the database, and local test
    # servers allowed as targets.
    pool = Workers(Settings(database_url=database.url, network_allow="127.0.0.0/8,::1"))
    pool.start()
    pool.start()
    yield pool
    for process in pool.processes:  # all at once, then wait for each
        process.terminate()
    for process in pool.processes:
        stop(process)


# --- runs, snapshots, checks ------------------------------------------------------------


def _enroll(runtime: Runtime, workspace_id: uuid.UUID, numbers: range) -> dict[uuid.UUID, int]:
    runs = {}
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace_id, key="faults")
        for n in numbers:
            contact = contact_service.resolve(session, workspace_id=workspace_id, spec={
                "email": f"c{n}@example.com"}, now=runtime.clock())
            enrolled = run_service.enroll(session, workflow=workflow, contact=contact,
                                          trigger_type="manual", event={"n": n},
                                          now=runtime.clock())
            runs[enrolled.run.id] = n
    return runs


def _statuses(runtime: Runtime, runs: dict[uuid.UUID, int]) -> dict[uuid.UUID, str]:
    with session_scope(runtime.sessions) as session:
        return {row.id: row.status for row in session.execute(
            select(WorkflowRun.id, WorkflowRun.status).where(WorkflowRun.id.in_(runs)))}


def _all_terminal(runtime: Runtime) -> bool:
    with session_scope(runtime.sessions) as session:
        return not session.scalar(select(func.count()).select_from(WorkflowRun)
                                  .where(WorkflowRun.status.not_in(TERMINAL)))


def _terminal_rows(runtime: Runtime) -> dict[uuid.UUID, tuple[str, ...]]:
    """Every terminal run in the database with its steps and its contact, as reprs."""
    with session_scope(runtime.sessions) as session:
        runs = {row.id: row for row in session.execute(
            select(WorkflowRun.__table__).where(WorkflowRun.status.in_(TERMINAL)))}
        steps: dict[uuid.UUID, list[str]] = {}
        for row in session.execute(select(RunStep.__table__).where(RunStep.run_id.in_(runs))
                                   .order_by(RunStep.run_id, RunStep.seq)):
            steps.setdefault(row.run_id, []).append(repr(tuple(row)))
        contacts = {row.id: repr(tuple(row)) for row in session.execute(
            select(Contact.__table__).where(Contact.id.in_(
                [r.contact_id for r in runs.values()])))}
    return {run_id: (repr(tuple(row)), *steps.get(run_id, []), contacts[row.contact_id])
            for run_id, row in runs.items()}


def _step_count(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(RunStep)) or 0)


def _calls_done(runtime: Runtime, runs: dict[uuid.UUID, int]) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(RunStep).where(
            RunStep.run_id.in_(runs), RunStep.node_id == "call",
            RunStep.status == "COMPLETED")) or 0)


@dataclass
class Scenario:
    runtime: Runtime
    workers: Workers
    workspace_id: uuid.UUID
    runs: dict[uuid.UUID, int] = field(default_factory=dict)
    before: dict[uuid.UUID, tuple[str, ...]] = field(default_factory=dict)

    def warm_up(self) -> None:
        """Finish a few runs first, so that there are terminal runs for the fault to spare
        (after the module's first scenario, those of the scenarios before serve)."""
        if len(_terminal_rows(self.runtime)) >= WARM_UP:
            return
        warm = _enroll(self.runtime, self.workspace_id, range(WARM_UP))
        self.runs |= warm
        wait_until(lambda: set(_statuses(self.runtime, warm).values()) <= set(TERMINAL),
                   timeout=30, what="the first runs to finish")

    def get_under_way(self) -> None:
        """Snapshot the terminal runs, start the rest, and return once a few of them have
        made their HTTP call (others are calling, or not yet claimed)."""
        self.before = _terminal_rows(self.runtime)
        rest = _enroll(self.runtime, self.workspace_id, range(WARM_UP, WARM_UP + UNDER_WAY))
        self.runs |= rest
        wait_until(lambda: _calls_done(self.runtime, rest) >= 6, timeout=30,
                   what="the runs to get under way")

    def in_flight(self) -> int:
        return sum(s not in TERMINAL for s in _statuses(self.runtime, self.runs).values())

    def recover(self, restored_at: float) -> tuple[float, float]:
        """Seconds from the restore to the first new step, and to every run terminal."""
        steps = _step_count(self.runtime)
        wait_until(lambda: _step_count(self.runtime) > steps, timeout=30,
                   what="the workers to record a step after the restore")
        resumed = time.monotonic() - restored_at
        wait_until(lambda: _all_terminal(self.runtime), timeout=60,
                   what="every run to finish after the restore")
        return resumed, time.monotonic() - restored_at

    def check(self, name: str, *, outage: float, in_flight: int, restored_at: float) -> None:
        resumed, finished = self.recover(restored_at)
        steps = self.check_finished()
        logs = self.workers.logs()
        records = [[line for line in log if _RECORD.match(line)] for log in logs]
        lines = max(len(log) for log in records)
        print(f"{name}: {len(self.runs)} runs ({in_flight} in flight at the fault), "  # noqa: T201
              f"{steps} steps, outage {outage:.1f} s, first step {resumed:.1f} s and every "
              f"run terminal {finished:.1f} s after the restore, 0 stranded, "
              f"{len(self.before)} runs terminal before the fault unchanged, "
              f"at most {lines} log records per worker")
        assert in_flight > 0
        assert len(self.before) >= WARM_UP
        assert finished <= RECOVERY_LIMIT, f"{name}: {finished:.1f} s to finish after restore"
        flood = "\n".join(line for line in max(logs, key=len) if not line.startswith(" "))
        assert lines <= MAX_LOG_RECORDS, f"a flood of log records:\n{flood}"
        assert not [line for log in records for line in log if " ERROR " in line], flood

    def check_finished(self) -> int:
        """Every run ended as designed, each step recorded once, no job left, and the runs
        terminal before the fault untouched; returns the number of steps."""
        with session_scope(self.runtime.sessions) as session:
            steps = session.execute(select(RunStep.run_id, RunStep.seq, RunStep.node_id)
                                    .where(RunStep.run_id.in_(self.runs))).all()
            jobs = session.scalar(select(func.count()).select_from(Job))
        assert _statuses(self.runtime, self.runs) == {
            run_id: _expected(n)[0] for run_id, n in self.runs.items()}
        assert jobs == 0, f"{jobs} jobs left: runs stranded"
        assert len({(s.run_id, s.seq) for s in steps}) == len(steps)
        visited: dict[uuid.UUID, list[tuple[int, str]]] = {}
        for run_id, seq, node in steps:
            visited.setdefault(run_id, []).append((seq, node))
        assert {run_id: tuple(node for _, node in sorted(v)) for run_id, v in visited.items()
                } == {run_id: _expected(n)[1] for run_id, n in self.runs.items()}
        after = _terminal_rows(self.runtime)
        changed = [run_id for run_id, rows in self.before.items() if after.get(run_id) != rows]
        assert not changed, f"{len(changed)} runs terminal before the fault were changed"
        return len(steps)


@pytest.fixture
def scenario(runtime, workspace, http_server, workers) -> Scenario:
    install(runtime, workspace.id, _flow(f"{http_server.url}/slow/0.05"))
    workers.logs()  # start each scenario's count of log lines afresh
    found = Scenario(runtime, workers, workspace.id)
    found.warm_up()
    return found


# --- the scenarios ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [5, 30])
def test_a_database_cut_of(seconds, scenario, database):
    scenario.get_under_way()
    in_flight = scenario.in_flight()
    database.proxy.cut()
    time.sleep(seconds)
    database.proxy.restore()
    scenario.check(f"cut {seconds} s", outage=seconds, in_flight=in_flight,
                   restored_at=time.monotonic())


def test_postgresql_restarts(scenario, database):
    """A planned restart (fast: sessions are told and closed), then a crash-like one
    (immediate: the server dies and replays its log on start)."""
    scenario.get_under_way()
    in_flight = scenario.in_flight()
    started = time.monotonic()
    database.cluster.restart("fast")
    outage = time.monotonic() - started
    steps = _step_count(scenario.runtime)
    wait_until(lambda: _step_count(scenario.runtime) > steps, timeout=30,
               what="a step after the first restart")
    started = time.monotonic()
    database.cluster.restart("immediate")
    restored = time.monotonic()
    scenario.check("PostgreSQL restart (fast, then immediate)",
                   outage=outage + restored - started, in_flight=in_flight,
                   restored_at=restored)


def _owner_prefix(process: subprocess.Popen[bytes]) -> str:
    """How a worker process names itself in lease_owner (worker/loop.py)."""
    return f"{socket.gethostname()}:{process.pid}:"


def _held_by(runtime: Runtime, prefix: str) -> set[uuid.UUID]:
    with session_scope(runtime.sessions) as session:
        return set(session.scalars(select(Job.run_id).where(Job.lease_owner.startswith(prefix))))


def _claims(runtime: Runtime, runs: set[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many times each run's job has been claimed (a finished run has no job)."""
    with session_scope(runtime.sessions) as session:
        return {row.run_id: row.claims for row in session.execute(
            select(Job.run_id, Job.claims).where(Job.run_id.in_(runs)))}


def test_a_cut_during_recovery(scenario, database, workers):
    """SIGKILL a worker holding a batch; as soon as another worker claims one of its runs
    (their leases expired), cut the database, so the recovery itself is interrupted."""
    runtime = scenario.runtime
    victim = workers.processes[0]
    dead = _owner_prefix(victim)
    scenario.get_under_way()
    wait_until(lambda: bool(_held_by(runtime, dead)), timeout=20,
               what="the victim to hold a batch")
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    orphans = _held_by(runtime, dead)
    assert orphans, "the victim let go of its batch before the kill"
    at_kill = _claims(runtime, orphans)
    in_flight = scenario.in_flight()
    workers.replace(victim)
    seen: dict[uuid.UUID, int] = {}

    def recovery_started() -> bool:
        seen.clear()
        seen.update(_claims(runtime, orphans))
        return seen != at_kill

    wait_until(recovery_started, timeout=LEASE_SECONDS + 10,
               what="another worker to claim the killed worker's runs")
    database.proxy.cut()
    time.sleep(3)
    database.proxy.restore()
    restored = time.monotonic()
    reclaimed = {run_id for run_id in orphans if seen.get(run_id) != at_kill[run_id]}
    print(f"cut during recovery: {len(orphans)} runs orphaned by SIGKILL, "  # noqa: T201
          f"{len(reclaimed)} of them claimed again when the cut came")
    scenario.check("cut during recovery", outage=3, in_flight=in_flight, restored_at=restored)


def test_the_job_listener_waits_out_a_cut_and_listens_again(runtime, database, caplog):
    """The LISTEN connection dies with the cut: the listener says so once, retries with a
    pause instead of hammering the database, and hears notifications again after the
    restore. (A proxy of its own, so that only the listener's attempts are counted.)"""
    proxy = tcpproxy.start("127.0.0.1", database.cluster.port)
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{proxy.port}/relayflow")
    listener = Listener.for_engine(engine, retry_max_seconds=0.5)
    assert listener is not None
    try:
        listener.wait(0.1)  # connected and listening
        proxy.cut()
        started = time.monotonic()
        while time.monotonic() - started < 2:
            listener.wait(0.05)
        attempts = proxy.refused
        proxy.restore()
        heard = False
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            with session_scope(runtime.sessions) as session:
                notify(session)
            heard = listener.wait(0.2)
    finally:
        listener.close()
        engine.dispose()
        proxy.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "relayflow.storage.notify"]
    print(f"listener: {attempts} connection attempts during a 2 s cut, then heard again")  # noqa: T201
    assert heard
    assert 1 <= attempts <= 5  # 0.5 s apart at most, not one per wait
    assert [m.split(" (")[0] for m in messages] == [
        "job listener lost its connection", "job listener reconnected"]
