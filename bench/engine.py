"""Orchestrator throughput: N manual runs of a 6-step graph through the real worker.

    python bench/engine.py                      # 10,000 runs on SQLite and PostgreSQL
    python bench/engine.py --runs 2000 --database sqlite
    python bench/engine.py --runs 3000 --database postgres --workers 2

The graph (CONDITION → UPDATE_CONTACT → SPLIT → UPDATE_CONTACT → END, plus the trigger
step) touches no network; every step row is persisted. Runs are enqueued first, then one
worker (the same `Worker.run_once` the `relayflow worker` command loops on) drains them.
With `--workers N`, N `relayflow worker` processes drain them instead, and are stopped once
every run is finished. Their rate counts the runs finished after the last of them began to
poll (its first beat in worker_beats) until the last run finished: a worker that is up sooner
drains alone meanwhile, and interpreter start-up is no part of the figure.
Prints enqueue rate, completed runs/s, step rows/s and the peak RSS of the process(es).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, or_, select, text

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, normalize_url, session_scope
from relayflow.storage.migrate import upgrade
from relayflow.storage.models import RunStep, WorkerBeat, WorkflowRun
from relayflow.telemetry import metrics
from relayflow.worker.loop import Worker

GRAPH = {
    "key": "bench",
    "trigger": {"type": "manual"},
    "start": "is_pro",
    "nodes": {
        "is_pro": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                   "then": "tag", "else": "tag"},
        "tag": {"type": "UPDATE_CONTACT", "set": {"segment": "{{ contact.plan }}-seen"},
                "next": "ab"},
        "ab": {"type": "SPLIT", "branches": [{"name": "a", "weight": 1, "next": "score"},
                                             {"name": "b", "weight": 1, "next": "score"}]},
        "score": {"type": "UPDATE_CONTACT", "set": {"variant": "{{ steps.ab.branch }}"},
                  "next": "done"},
        "done": {"type": "END"},
    },
}
STEPS_PER_RUN = 6
BATCH_SIZE = 64
SECRET = "bench"


def _fresh_database(kind: str, pg_url: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}"
    name = f"relayflow_bench_{os.getpid()}"
    admin = create_engine(normalize_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg_url.rsplit("/", 1)[0] + "/" + name


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _drain_with_processes(url: str, workers: int, runtime: Runtime,
                          workdir: Path) -> tuple[int, float, list[float]]:
    """Starts `workers` worker processes, waits until no run is PENDING or RUNNING, stops
    them; the runs finished once all were polling, the seconds from then to the last
    finished, and each one's peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}
    env |= {"RELAYFLOW_DATABASE_URL": url, "RELAYFLOW_SECRET_KEY": SECRET,
            "RELAYFLOW_BATCH_SIZE": str(BATCH_SIZE), "RELAYFLOW_LOG_LEVEL": "WARNING"}
    logs = [workdir / f"worker{n + 1}.log" for n in range(workers)]
    processes = []
    for log in logs:
        with log.open("wb") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "relayflow", "worker"], env=env, cwd=workdir,
                stdout=out, stderr=subprocess.STDOUT))
    beats = or_(*(WorkerBeat.name.like(f"%:{process.pid}:%") for process in processes))
    all_up: datetime | None = None
    try:
        deadline = time.monotonic() + 1800
        while True:
            with session_scope(runtime.sessions) as session:
                open_ = session.scalar(select(func.count()).select_from(WorkflowRun).where(
                    WorkflowRun.status.in_(("PENDING", "RUNNING")))) or 0
                if all_up is None:
                    started = session.scalars(select(WorkerBeat.started_at).where(beats)).all()
                    all_up = max(started) if len(started) == workers else None
            if open_ == 0:
                break
            for process, log in zip(processes, logs, strict=True):
                if process.poll() is not None:
                    raise SystemExit(f"relayflow worker exited ({process.returncode}):\n"
                                     f"{log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{open_} runs still open after 1800 s")
            time.sleep(0.05)
        peaks = [_peak_rss_mib(process.pid) for process in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if all_up is None:
        raise SystemExit(f"the runs were finished before all {workers} workers were up")
    with session_scope(runtime.sessions) as session:
        counted, last = session.execute(
            select(func.count(), func.max(WorkflowRun.finished_at))
            .where(WorkflowRun.finished_at > all_up)).one()
    if not counted or last is None:
        raise SystemExit(f"no run was finished after all {workers} workers were up")
    return counted, (last - all_up).total_seconds(), peaks


def bench(kind: str, runs: int, pg_url: str, workers: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = _fresh_database(kind, pg_url, Path(tmp))
        upgrade(url)
        engine = make_engine(url)
        runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(SECRET))
        now = datetime.now(UTC)
        with session_scope(runtime.sessions) as session:
            ws, _ = workspace_service.create(session, slug="bench", name=None, now=now)
            workflow_service.save(session, workspace_id=ws.id, definition=GRAPH, now=now)
            workflow_service.activate(session, workspace_id=ws.id, key="bench", actor="bench",
                                      now=now)
        started = time.perf_counter()
        for offset in range(0, runs, 500):
            with session_scope(runtime.sessions) as session:
                workflow = workflow_service.get(session, workspace_id=ws.id, key="bench")
                for i in range(offset, min(runs, offset + 500)):
                    contact = contact_service.resolve(
                        session, workspace_id=ws.id, now=now,
                        spec={"email": f"c{i}@bench.test",
                              "attributes": {"plan": "pro" if i % 3 else "free"}})
                    run_service.enroll(session, workflow=workflow, contact=contact,
                                       trigger_type="manual", event={}, now=runtime.clock())
        enqueue_s = time.perf_counter() - started

        peaks: list[float] = []
        counted = runs
        if workers is None:
            worker = Worker(runtime, Settings(database_url=url, batch_size=BATCH_SIZE))
            started = time.perf_counter()
            while worker.run_once():
                pass
            work_s = time.perf_counter() - started
        else:
            counted, work_s, peaks = _drain_with_processes(url, workers, runtime, Path(tmp))

        with session_scope(runtime.sessions) as session:
            completed = session.scalar(select(func.count()).select_from(WorkflowRun)
                                       .where(WorkflowRun.status == "COMPLETED")) or 0
            steps = session.scalar(select(func.count()).select_from(RunStep)) or 0
        engine.dispose()
        if kind == "postgres":
            admin = create_engine(normalize_url(pg_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"'))
            admin.dispose()
    if completed != runs or steps != runs * STEPS_PER_RUN:
        raise SystemExit(f"{kind}: expected {runs} completed runs and {runs * STEPS_PER_RUN} "
                         f"steps, got {completed} and {steps}")
    share = counted / runs  # with worker processes: the runs finished once all were up
    return {"enqueue_per_s": runs / enqueue_s, "runs_per_s": completed * share / work_s,
            "steps_per_s": steps * share / work_s, "seconds": work_s, "counted": counted,
            "worker_peaks": peaks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get(
        "RELAYFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--workers", type=int, default=None,
                        help="drain with N `relayflow worker` processes (default: one worker "
                             "in this process)")
    parser.add_argument("--metrics", choices=["shared", "memory", "off"], default="shared",
                        help="shared: values in files processes share, as under `relayflow "
                             "serve` (the default); memory: in this process; off: none "
                             "recorded, to measure what recording costs")
    args = parser.parse_args()
    shared = None
    if args.metrics == "shared":
        shared = metrics.share_between_processes()
    elif args.metrics == "off":
        metrics.disable()
    metrics.warm()  # as a server does at its start: the import is in no timed phase
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    who = ("one worker" if args.workers is None
           else f"{args.workers} worker process{'es' if args.workers > 1 else ''}")
    print(f"{args.runs} runs x {STEPS_PER_RUN} steps, {who}, batch {BATCH_SIZE}, "  # noqa: T201
          f"metrics {args.metrics}")
    peaks: list[float] = []
    for kind in kinds:
        r = bench(kind, args.runs, args.pg_url, args.workers)
        peaks += r["worker_peaks"]
        counted = "" if args.workers is None else f", the last {r['counted']} runs"
        print(f"{kind:9} enqueue {r['enqueue_per_s']:8.0f} runs/s | worker "  # noqa: T201
              f"{r['runs_per_s']:7.0f} runs/s, {r['steps_per_s']:8.0f} step rows/s "
              f"({r['seconds']:.1f} s{counted})")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = f"; worker processes {max(peaks):.0f} MiB" if peaks else ""
    print(f"peak RSS {peak_mb:.0f} MiB{workers}")  # noqa: T201
    metrics.remove_shared(shared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
