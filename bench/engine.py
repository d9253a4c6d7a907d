"""Orchestrator throughput: N manual runs of a 6-step graph through the real worker.

    python bench/engine.py                      # 10,000 runs on SQLite and PostgreSQL
    python bench/engine.py --runs 2000 --database sqlite

The graph (CONDITION → UPDATE_CONTACT → SPLIT → UPDATE_CONTACT → END, plus the trigger
step) touches no network; every step row is persisted. Runs are enqueued first, then one
worker (the same `Worker.run_once` the `relayflow worker` command loops on) drains them.
Prints enqueue rate, completed runs/s, step rows/s and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, normalize_url, session_scope
from relayflow.storage.migrate import upgrade
from relayflow.storage.models import RunStep, WorkflowRun
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


def bench(kind: str, runs: int, pg_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = _fresh_database(kind, pg_url, Path(tmp))
        upgrade(url)
        engine = make_engine(url)
        runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher("bench"))
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

        worker = Worker(runtime, Settings(database_url=url, batch_size=64))
        started = time.perf_counter()
        while worker.run_once():
            pass
        work_s = time.perf_counter() - started

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
    return {"enqueue_per_s": runs / enqueue_s, "runs_per_s": completed / work_s,
            "steps_per_s": steps / work_s, "seconds": work_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get(
        "RELAYFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    print(f"{args.runs} runs x {STEPS_PER_RUN} steps, one worker, batch 64")  # noqa: T201
    for kind in kinds:
        r = bench(kind, args.runs, args.pg_url)
        print(f"{kind:9} enqueue {r['enqueue_per_s']:8.0f} runs/s | worker "  # noqa: T201
              f"{r['runs_per_s']:7.0f} runs/s, {r['steps_per_s']:8.0f} step rows/s "
              f"({r['seconds']:.1f} s)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MiB")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
