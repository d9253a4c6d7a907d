"""Deactivating a workflow with many parked runs, against a real `relayflow serve`.

    python bench/deactivate.py                        # 15,000 runs, SQLite and PostgreSQL
    python bench/deactivate.py --runs 5000 --database sqlite

The runs are parked at a three-day WAIT (written in bulk, as the worker would have left
them). `relayflow serve` (with its worker processes) is started on a free loopback port; while
other workflows' webhooks are called 20 times a second, POST /api/v1/workflows/drip/deactivate
is sent. Prints the time to the answer, the time until the last run is CANCELED, and the
webhook calls' answer times (p50, p95, max) and their runs' time to COMPLETED meanwhile.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support

from tests.support.databases import empty_database
from tests.support.parked import drip, park

from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import (
    make_engine,
    make_sessionmaker,
    session_scope,
)
from relayflow.storage.migrate import upgrade
from relayflow.storage.models import WorkflowRun

SECRET = "bench-secret-key"
# Five webhook workflows, each called four times a second: under the per-webhook rate limit
# (300 a minute) and 20 calls a second in all.
PINGS = [{"key": f"ping{i}", "name": "Ping", "trigger": {"type": "webhook"}, "start": "done",
          "nodes": {"done": {"type": "END"}}} for i in range(5)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pinger(threading.Thread):
    """Calls the ping webhooks in turn every 50 ms, each call on its own thread (a call stuck
    behind the deactivation does not delay the next one), recording when each started and
    how long its answer took."""

    def __init__(self, base: str, tokens: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = [f"{base}/hooks/{token}" for token in tokens]
        self.stop = threading.Event()
        self.calls: list[tuple[float, float]] = []
        self.failures = 0
        self._lock = threading.Lock()

    def _call(self, client: httpx.Client, url: str) -> None:
        started = time.perf_counter()
        try:
            ok = client.post(url, json={"n": 1}).status_code < 300
        except httpx.HTTPError:
            ok = False
        with self._lock:
            self.calls.append((started, time.perf_counter() - started))
            self.failures += 0 if ok else 1

    def during(self, start: float, end: float) -> list[float]:
        """Answer times of the calls started between `start` and `end`."""
        with self._lock:
            return [took for at, took in self.calls if start <= at <= end]

    def run(self) -> None:
        limits = httpx.Limits(max_connections=200)
        with httpx.Client(timeout=300, limits=limits) as client, \
                ThreadPoolExecutor(max_workers=200) as pool:
            n = 0
            while not self.stop.is_set():
                pool.submit(self._call, client, self.urls[n % len(self.urls)])
                n += 1
                self.stop.wait(0.05)


def bench(kind: str, runs: int, pg_url: str) -> dict[str, float]:
    like = pg_url if kind == "postgres" else "sqlite"
    with tempfile.TemporaryDirectory() as tmp, empty_database(like, Path(tmp)) as url:
        upgrade(url)
        engine = make_engine(url)
        runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(SECRET))
        now = datetime.now(UTC)
        with session_scope(runtime.sessions) as session:
            ws, api_key = workspace_service.create(session, slug="bench", name=None, now=now)
            for definition in (drip(), *PINGS):
                workflow_service.save(session, workspace_id=ws.id, definition=definition,
                                      now=now)
                workflow_service.activate(session, workspace_id=ws.id,
                                          key=definition["key"], actor="bench", now=now)
            tokens = [str(workflow_service.get(session, workspace_id=ws.id,
                                               key=p["key"]).webhook_token) for p in PINGS]
            drip_id = workflow_service.get(session, workspace_id=ws.id, key="drip").id
        seeded = time.perf_counter()
        park(runtime, ws.id, "drip", runs, now=now)
        seed_s = time.perf_counter() - seeded

        port = free_port()
        env = {**os.environ, "RELAYFLOW_DATABASE_URL": url, "RELAYFLOW_SECRET_KEY": SECRET,
               "RELAYFLOW_LOG_LEVEL": "WARNING", "RELAYFLOW_POLL_SECONDS": "0.2"}
        server = subprocess.Popen([sys.executable, "-m", "relayflow", "serve", "--host",
                                   "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("relayflow serve did not start")
                time.sleep(0.1)
            pinger = Pinger(base, tokens)
            pinger.start()
            time.sleep(1.0)  # a baseline of webhook calls before the deactivation
            window_start = datetime.now(UTC)
            started = time.perf_counter()
            answer = httpx.post(f"{base}/api/v1/workflows/drip/deactivate", timeout=600,
                                headers={"Authorization": f"Bearer {api_key}"})
            answer_s = time.perf_counter() - started
            answer.raise_for_status()
            while True:
                with session_scope(runtime.sessions) as session:
                    left = session.scalar(
                        select(func.count()).select_from(WorkflowRun).where(
                            WorkflowRun.workflow_id == drip_id,
                            WorkflowRun.status.in_(("PENDING", "RUNNING")))) or 0
                if left == 0:
                    break
                if time.perf_counter() - started > 900:
                    raise SystemExit(f"{left} runs still in flight after 900 s")
                time.sleep(0.05)
            finished = time.perf_counter()
            finish_s = finished - started
            time.sleep(1.0)
            pinger.stop.set()
            pinger.join()
            time.sleep(1.0)  # let the last ping runs complete
            with session_scope(runtime.sessions) as session:
                canceled = session.scalar(
                    select(func.count()).select_from(WorkflowRun).where(
                        WorkflowRun.workflow_id == drip_id,
                        WorkflowRun.status == "CANCELED")) or 0
                pings = session.execute(
                    select(WorkflowRun.created_at, WorkflowRun.finished_at).where(
                        WorkflowRun.workflow_id != drip_id,
                        WorkflowRun.created_at >= window_start)).all()
        finally:
            server.terminate()
            server.wait(30)
            engine.dispose()
    lags = [(f - c).total_seconds() for c, f in pings if f is not None]
    # Calls started while the deactivation ran (at least the second after it began).
    during = pinger.during(started, max(finished, started + 1.0))
    return {"seed_s": seed_s, "answer_s": answer_s, "finish_s": finish_s,
            "canceled": canceled, "answer": answer.json(),
            "hooks": len(during), "hook_failures": pinger.failures,
            "hook_p50": statistics.median(during), "hook_p95": _pct(during, 0.95),
            "hook_max": max(during),
            "ping_runs": len(pings), "ping_open": len(pings) - len(lags),
            "ping_p95": _pct(lags, 0.95), "ping_max": max(lags, default=float("nan"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get(
        "RELAYFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    for kind in kinds:
        r = bench(kind, args.runs, args.pg_url)
        answer = {k: r["answer"].get(k) for k in ("status", "to_cancel", "canceled",
                                                  "canceled_runs")}
        print(f"{kind}: {args.runs} parked runs (seeded in {r['seed_s']:.1f} s)\n"  # noqa: T201
              f"  deactivate answered in {r['answer_s']:.2f} s: {answer}\n"
              f"  all {r['canceled']} CANCELED after {r['finish_s']:.1f} s\n"
              f"  webhooks meanwhile: {r['hooks']} calls ({r['hook_failures']} of all failed), "
              f"answer p50 {r['hook_p50'] * 1000:.0f} ms, p95 {r['hook_p95'] * 1000:.0f} ms, "
              f"max {r['hook_max'] * 1000:.0f} ms\n"
              f"  their runs: {r['ping_runs']} ({r['ping_open']} not finished), created to "
              f"COMPLETED p95 {r['ping_p95']:.2f} s, max {r['ping_max']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
