"""End to end: the peer workload through real relayflow processes, from webhook to inbox.

    python bench/e2e.py --mode sqlite                     # 5,000 webhooks, 32 at a time
    python bench/e2e.py --mode postgres --runs 1000 --concurrency 32 --json
    python bench/e2e.py --mode postgres-split --workers 2 --runs 1000
    python bench/e2e.py --mode sqlite-split                # serve --no-worker + 1 worker
    python bench/e2e.py --mode postgres --rate 20 --runs 600   # open loop, 20 requests/s
    python bench/e2e.py --mode sqlite --intake-only            # webhooks/s, no worker

A local JSON service (http.server) and SMTP server (aiosmtpd) stand in for the outside world.
On a fresh database (SQLite file, or a PostgreSQL database created and dropped here) relayflow
is migrated and given a workspace, then started (sqlite, postgres: `relayflow serve` with the
worker processes it runs beside itself, `--workers N` of them if given; sqlite-split,
postgres-split: `serve --no-worker` and N `relayflow worker` processes started here).
Through the API the bench allows loopback for the workspace, points the email provider at the
SMTP server and activates webhook → CONDITION → INTEGRATION POST → SEND_MESSAGE → END. It
sends N webhooks, each for another contact (closed loop at concurrency C, or open loop at
--rate R a second), and waits until every run is finished. The webhooks go out through
bench/loadgen.py, a lean keep-alive client: with httpx the client alone spent as much CPU
as the server and, on two cores, set the pace.

Prints runs/s (first webhook sent → last run's finished_at), webhook answer p50/p95 (client
side; open loop: from the scheduled send), created → COMPLETED p50/p95 (both written by
relayflow), CPU ms per run and peak RSS (VmHWM) of the relayflow processes (/proc), the peak
of their memory together (PSS: shared pages counted once; sampled every 0.25 s), the
CPU of this bench's own client and sinks (they share the machine), stored
bytes per run (growth of the SQLite file and -wal, or of pg_database_size) and the checks:
every run COMPLETED, every e-mail and every JSON call received exactly once (exit 1 if not).
With --intake-only, `serve --no-worker` only accepts: the figure is webhooks accepted a second
(first sent → last answered), and the check is one PENDING run per accepted webhook.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, func, select, text

from relayflow.storage.db import make_engine
from relayflow.storage.models import WorkerBeat, WorkflowRun
from relayflow.worker.process import process_count

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support
from loadgen import Client, Refused
from tests.support.databases import empty_database

SECRET = "bench-e2e-secret-key"
DOMAIN = "e2e.test"
FINISHED = ("COMPLETED", "FAILED", "CANCELED")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def workflow(service_url: str) -> dict[str, Any]:
    return {
        "key": "peer", "name": "Peer workload",
        "trigger": {"type": "webhook", "contact": {"email": "{{ event.email }}"}},
        "start": "paid",
        "nodes": {
            "paid": {"type": "CONDITION", "when": "event.amount > 0",
                     "then": "record", "else": "done"},
            "record": {"type": "INTEGRATION", "next": "receipt",
                       "request": {"method": "POST", "url": f"{service_url}/orders",
                                   "body": {"run": "{{ run.id }}", "email": "{{ event.email }}",
                                            "order": "{{ event.order }}",
                                            "amount": "{{ event.amount }}"}},
                       "capture": {"ticket": "body.ticket"}},
            "receipt": {"type": "SEND_MESSAGE", "channel": "email", "to": "{{ event.email }}",
                        "subject": "Order {{ event.order }} received",
                        "body": "Ticket {{ steps.record.ticket }} (run {{ run.id }}).",
                        "next": "done"},
            "done": {"type": "END"},
        },
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Sinks:
    """What the outside world received: JSON calls by Idempotency-Key and by contact, and
    e-mails by recipient and by Message-ID."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.call_keys: Counter[str] = Counter()
        self.call_emails: Counter[str] = Counter()
        self.mail_to: Counter[str] = Counter()
        self.mail_ids: Counter[str] = Counter()

    @contextmanager
    def serving(self) -> Iterator[tuple[str, int]]:
        """The JSON service's base URL and the SMTP port, while both run."""
        sinks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                email = str(json.loads(body or b"{}").get("email", ""))
                with sinks.lock:
                    sinks.call_keys[self.headers.get("Idempotency-Key", "")] += 1
                    sinks.call_emails[email] += 1
                    ticket = len(sinks.call_keys)
                data = json.dumps({"ok": True, "ticket": ticket}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Mailbox:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.content)
                with sinks.lock:
                    for rcpt in envelope.rcpt_tos:
                        sinks.mail_to[rcpt.lower()] += 1
                    sinks.mail_ids[str(message["Message-ID"])] += 1
                return "250 2.0.0 OK"

        class Service(ThreadingHTTPServer):
            daemon_threads = True
            # The default backlog of 5 resets connections a concurrent worker opens at once.
            request_queue_size = 1024

        http = Service(("127.0.0.1", 0), Handler)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        smtp = Controller(Mailbox(), hostname="127.0.0.1", port=free_port())
        smtp.start()
        try:
            yield f"http://127.0.0.1:{http.server_address[1]}", smtp.port
        finally:
            smtp.stop()
            http.shutdown()
            http.server_close()


def stored_bytes(engine: Engine, url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)


def _stat(pid: int) -> list[str]:
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _tree(root: int) -> tuple[set[int], dict[int, list[str]]]:
    """A process and its live descendants, with every process's /proc/PID/stat fields."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                stats[int(entry.name)] = _stat(int(entry.name))
    found, frontier = {root}, [root]
    while frontier:
        parent = str(frontier.pop())
        children = {pid for pid, fields in stats.items() if fields[1] == parent} - found
        found |= children
        frontier += children
    return found, stats


def cpu_seconds(root: int) -> float:
    """utime + stime of a process and its live descendants, reaped children included."""
    found, stats = _tree(root)
    ticks = sum(int(f) for pid in found if pid in stats for f in stats[pid][11:15])
    return ticks / CLOCK_TICKS


def peak_rss_mib(root: int) -> list[float]:
    """Peak resident memory of a process and of each of its live descendants (serve's
    workers run in child processes), in pid order."""
    peaks: list[float] = []
    for pid in sorted(_tree(root)[0]):
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return peaks


def pss_mib(roots: list[int]) -> float:
    """Proportional set size of these processes and their descendants together: a page
    shared by n processes (the interpreter, libraries) counts 1/n in each, so the sum is
    the memory they use together, which a sum of RSS overstates."""
    total = 0
    for root in roots:
        for pid in _tree(root)[0]:
            with suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
    return total / 1024


@contextmanager
def peak_pss(roots: list[int], every: float = 0.25) -> Iterator[list[float]]:
    """Samples `pss_mib` until the block ends; yields a list whose one item is the peak."""
    peak, done = [0.0], threading.Event()

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], pss_mib(roots))
            if done.wait(every):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


class Relayflow:
    """relayflow commands and long-running processes, with their output kept in files."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}
        self.env |= {"RELAYFLOW_DATABASE_URL": url, "RELAYFLOW_SECRET_KEY": SECRET,
                     "RELAYFLOW_LOG_LEVEL": "WARNING", "RELAYFLOW_HOST": "127.0.0.1",
                     "RELAYFLOW_PORT": str(self.port),
                     # The bench is one sender calling one webhook thousands of times.
                     "RELAYFLOW_RATE_LIMIT_WEBHOOK_PER_MINUTE": "0"}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def command(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "relayflow", *args], env=self.env,
                              cwd=self.workdir, capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"relayflow {' '.join(args)} failed:\n{done.stderr.decode()}")
        return done.stdout.decode()

    def start(self, name: str, *args: str) -> None:
        with (self.workdir / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "relayflow", *args], env=self.env, cwd=self.workdir,
                stdout=log, stderr=subprocess.STDOUT)

    def output(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SystemExit(f"relayflow {name} exited ({process.returncode}):\n"
                                 f"{self.output(name)[-3000:]}")

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise SystemExit(f"relayflow serve did not answer /healthz in {timeout:.0f} s")
            time.sleep(0.1)

    def wait_workers(self, engine: Engine, count: int, timeout: float = 60) -> None:
        """Until `count` worker processes have said they are running. serve answers before
        its workers have started (a second or so of start-up), and the figures are those
        of a running service: runs sent in that second would wait for it and be counted."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            with engine.connect() as conn:
                running = conn.scalar(select(func.count()).select_from(WorkerBeat)) or 0
            if running >= count:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{running} of {count} relayflow workers started in "
                                 f"{timeout:.0f} s")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()  # SIGTERM: the worker finishes its batch and lets go
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def configure(base: str, api_key: str, service_url: str, smtp_port: int) -> str:
    """Network allow-list, email provider and workflow, through the API; the webhook URL."""
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {api_key}"}) as api:
        for method, path, body in (
            ("PUT", "/settings/network", {"allow": ["127.0.0.1/32"]}),
            ("PUT", "/providers/email", {"type": "smtp", "host": "127.0.0.1",
                                         "port": smtp_port, "tls": "none",
                                         "from": f"shop@{DOMAIN}"}),
            ("POST", "/workflows", workflow(service_url)),
            ("POST", "/workflows/peer/activate", None),
        ):
            answer = api.request(method, path, json=body)
            if answer.status_code >= 300:
                raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text}")
        url = str(api.get("/workflows/peer").raise_for_status().json()["webhook_url"])
    return f"{base}/hooks/{url.rsplit('/', 1)[1]}"


async def fire(url: str, runs: int, concurrency: int,
               rate: float | None) -> tuple[float, list[float], list[int]]:
    """Sends the webhooks; the wall time of the first send, answer times (ms), accepted ones.
    Open loop (rate): each request leaves on schedule and its time counts from then; at
    most 1,000 are in flight (a request past that waits, and its wait counts)."""
    acks: list[float] = []
    accepted: list[int] = []
    refused: Counter[str] = Counter()
    client = Client(url, concurrency if rate is None else 1000)

    async def send(i: int, due: float | None) -> None:
        event = {"email": f"c{i}@{DOMAIN}", "order": i, "amount": 10 + i % 90}
        try:
            status, body, begun = await client.post(event, {"Idempotency-Key": f"order-{i}"})
            ok, why = status == 202, f"{status} {body[:200].decode(errors='replace')}"
        except Refused as exc:
            ok, why, begun = False, str(exc), exc.begun
        acks.append((time.perf_counter() - (begun if due is None else due)) * 1000)
        if ok:
            accepted.append(i)
        else:
            refused[why] += 1

    try:
        first = time.time()
        start = time.perf_counter()
        if rate is None:
            await asyncio.gather(*(send(i, None) for i in range(runs)))
        else:
            tasks = []
            for i in range(runs):
                due = start + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                tasks.append(asyncio.create_task(send(i, due)))
            await asyncio.gather(*tasks)
    finally:
        client.close()
    if refused:  # to stderr, which the progress bar does not overwrite
        print(f"webhooks refused: {dict(refused)}", file=sys.stderr)  # noqa: T201
    if client.resent:
        print(f"webhooks sent again after a kept-alive connection closed: "  # noqa: T201
              f"{client.resent}", file=sys.stderr)
    return first, acks, accepted


def wait_finished(engine: Engine, expected: int, relayflow: Relayflow, timeout: float) -> None:
    """Until `expected` runs exist and none is PENDING or RUNNING; fails loudly on a timeout,
    on two minutes without progress, or when a relayflow process exits."""
    started = last_change = time.monotonic()
    last = None
    while True:
        with engine.connect() as conn:
            total = conn.scalar(select(func.count()).select_from(WorkflowRun)) or 0
            open_ = conn.scalar(select(func.count()).select_from(WorkflowRun).where(
                WorkflowRun.status.not_in(FINISHED))) or 0
        if total >= expected and open_ == 0:
            return
        relayflow.check_alive()
        now = time.monotonic()
        if (total, open_) != last:
            last, last_change = (total, open_), now
        if now - started > timeout or now - last_change > 120:
            raise SystemExit(f"{open_} of {total} runs still open after {now - started:.0f} s "
                             f"({now - last_change:.0f} s without progress)")
        time.sleep(0.25)


def bench(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    sinks = Sinks()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="relayflow-e2e-")))
        service_url, smtp_port = stack.enter_context(sinks.serving())
        url = stack.enter_context(empty_database(
            "sqlite" if args.mode.startswith("sqlite") else args.database_url, tmp))
        relayflow = Relayflow(url, tmp)
        relayflow.command("migrate")
        api_key = json.loads(relayflow.command("workspace", "create", "e2e", "--json"))["api_key"]
        stack.callback(relayflow.stop)
        if args.intake_only:
            relayflow.start("serve", "serve", "--no-worker")
        elif args.mode.endswith("-split"):
            relayflow.start("serve", "serve", "--no-worker")
            for n in range(args.workers):
                relayflow.start(f"worker{n + 1}", "worker")
        else:
            if args.workers is not None:
                relayflow.env["RELAYFLOW_SERVE_WORKER_PROCESSES"] = str(args.workers)
            relayflow.start("serve", "serve")
        relayflow.wait_healthy()
        hook = configure(relayflow.base, api_key, service_url, smtp_port)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        if not args.intake_only:
            workers = (args.workers if args.mode.endswith("-split") or args.workers is not None
                       else process_count(0))
            relayflow.wait_workers(engine, workers)
        pids = {name: p.pid for name, p in relayflow.processes.items()}
        size_before = stored_bytes(engine, url)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before = time.process_time()  # the client and the two sinks share the machine

        with peak_pss(list(pids.values())) as memory:
            first, acks, accepted = asyncio.run(fire(hook, args.runs, args.concurrency,
                                                     args.rate))
            answered = time.time()
            if not args.intake_only:
                wait_finished(engine, len(accepted), relayflow, args.timeout)

        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        own = time.process_time() - own_before
        rss = {name: peak_rss_mib(p.pid) for name, p in relayflow.processes.items()}
        with engine.connect() as conn:
            rows = conn.execute(select(WorkflowRun.status, WorkflowRun.created_at,
                                       WorkflowRun.finished_at, WorkflowRun.error)).all()
        size = stored_bytes(engine, url) - size_before
        # At log level WARNING relayflow writes nothing in a clean run, so whatever it wrote
        # is news; uvicorn's own INFO lines (start-up, access log) stay on whatever the level.
        logged = {name: [line for line in relayflow.output(name).splitlines()
                         if not line.startswith("INFO:")] for name in pids}
    statuses = Counter(status for status, *_ in rows)
    errors = Counter(error for status, _, _, error in rows if status != "COMPLETED")
    lags = [(f - c).total_seconds() for s, c, f, _ in rows if s == "COMPLETED" and f]
    last = max((f for _, _, f, _ in rows if f is not None), default=None)
    elapsed = (last.timestamp() - first) if last is not None else float("nan")
    per_run = 1 / max(1, len(rows))
    figures: dict[str, Any] = {
        "mode": args.mode,
        # worker processes: the -split modes' own, or those serve runs beside itself
        "workers": (args.workers if args.mode.endswith("-split")
                    else 0 if args.intake_only else len(rss["serve"]) - 1),
        "runs": args.runs, "concurrency": args.concurrency, "rate": args.rate,
        "accepted": len(accepted), "statuses": dict(statuses), "seconds": round(elapsed, 2),
        "runs_per_s": round(len(rows) / elapsed, 2) if rows else 0.0,
        "webhooks_per_s": round(len(accepted) / (answered - first), 1),
        "ack_p50_ms": round(pct(acks, 0.5), 1), "ack_p95_ms": round(pct(acks, 0.95), 1),
        "completed_p50_s": round(pct(lags, 0.5), 3), "completed_p95_s": round(pct(lags, 0.95), 3),
        "cpu_ms_per_run": round(sum(cpu.values()) * 1000 * per_run, 1),
        "cpu_ms_per_run_by_process": {k: round(v * 1000 * per_run, 1) for k, v in cpu.items()},
        "bench_cpu_ms_per_run": round(own * 1000 * per_run, 1),
        "peak_rss_mib": {name: [round(mib, 1) for mib in tree] for name, tree in rss.items()},
        "peak_pss_mib": round(memory[0], 1),
        "bytes_per_run": round(size * per_run),
        "log_lines": {name: len(lines) for name, lines in logged.items()},
    }
    for name, lines in logged.items():
        if lines:
            print(f"relayflow {name} logged {len(lines)} lines, the last ones:",  # noqa: T201
                  *lines[-8:], sep="\n  ")
    failed = (intake_checks(args.runs, accepted, statuses) if args.intake_only
              else checks(sinks, args.runs, accepted, statuses))
    if errors and not args.intake_only:
        failed.append(f"errors of runs not COMPLETED: {dict(errors.most_common(3))}")
    return figures, failed


def intake_checks(runs: int, accepted: list[int], statuses: Counter[str]) -> list[str]:
    failed = []
    if len(accepted) != runs:
        failed.append(f"{runs - len(accepted)} of {runs} webhooks were not answered 202")
    if statuses["PENDING"] != len(accepted) or statuses.total() != len(accepted):
        failed.append(f"runs: expected {len(accepted)} PENDING, got {dict(statuses)}")
    return failed


def checks(sinks: Sinks, runs: int, accepted: list[int], statuses: Counter[str]) -> list[str]:
    """What went wrong, in words; empty when every check passed."""
    expected = {f"c{i}@{DOMAIN}" for i in accepted}
    failed = []
    if len(accepted) != runs:
        failed.append(f"{runs - len(accepted)} of {runs} webhooks were not answered 202")
    if statuses["COMPLETED"] != len(accepted) or statuses.total() != len(accepted):
        failed.append(f"runs: expected {len(accepted)} COMPLETED, got {dict(statuses)}")
    for what, counts, keys in (
        ("e-mails by recipient", sinks.mail_to, expected),
        ("e-mails by Message-ID", sinks.mail_ids, None),
        ("JSON calls by contact", sinks.call_emails, expected),
        ("JSON calls by Idempotency-Key", sinks.call_keys, None),
    ):
        repeated = sum(1 for n in counts.values() if n > 1)
        unexpected = len(set(counts) ^ keys) if keys is not None else 0
        if repeated or unexpected or len(counts) != len(accepted):
            failed.append(f"{what}: {len(counts)} distinct for {len(accepted)} runs, "
                          f"{repeated} received more than once, {unexpected} unexpected "
                          f"or missing")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["sqlite", "postgres", "sqlite-split",
                                           "postgres-split"],
                        default="sqlite")
    parser.add_argument("--workers", type=int, default=None,
                        help="relayflow worker processes: started by the bench in the -split "
                             "modes (default 1), by serve in the others (default: serve's)")
    parser.add_argument("--runs", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=None,
                        help="open loop: send this many webhooks a second on schedule")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds to wait for every run to finish")
    parser.add_argument("--database-url", default=os.environ.get(
        "RELAYFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to create the scratch database on")
    parser.add_argument("--intake-only", action="store_true",
                        help="serve --no-worker: measure accepting webhooks only")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    args = parser.parse_args()
    if args.workers is not None and (args.workers < 1 or args.intake_only):
        parser.error("--workers N needs N >= 1, and a worker (not --intake-only)")
    if args.workers is None and args.mode.endswith("-split"):
        args.workers = 1
    if args.intake_only and args.mode.endswith("-split"):
        parser.error("--intake-only starts no worker; use --mode sqlite or postgres")
    if args.runs < 1 or args.concurrency < 1 or (args.rate is not None and args.rate <= 0):
        parser.error("--runs, --concurrency and --rate must be positive")
    r, failed = bench(args)
    load = (f"open loop {args.rate:g}/s" if args.rate is not None
            else f"concurrency {args.concurrency}")
    beside = "" if args.mode.endswith("-split") else " beside serve"
    workers = f", {r['workers']} worker process(es){beside}"
    cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in r["cpu_ms_per_run_by_process"].items())
    rss = ", ".join(f"{name} {' + '.join(f'{mib:.0f}' for mib in tree)} MiB"
                    for name, tree in r["peak_rss_mib"].items())
    pss = f"{r['peak_pss_mib']:.0f} MiB (PSS, sampled every 0.25 s)"
    answers = f"  webhook answer p50 {r['ack_p50_ms']:.0f} ms, p95 {r['ack_p95_ms']:.0f} ms"
    if args.intake_only:
        lines = [f"{r['mode']}, no worker: {r['runs']} webhooks, {load}",
                 f"  {r['webhooks_per_s']:.0f} webhooks/s accepted", answers,
                 f"  CPU {r['cpu_ms_per_run']:.2f} ms/webhook; peak RSS {rss}",
                 f"  peak memory of relayflow's processes together: {pss}"]
    else:
        lines = [f"{r['mode']}{workers}: {r['runs']} webhooks, {load}",
                 f"  {r['runs_per_s']:.1f} runs/s ({r['seconds']:.1f} s, first webhook sent to "
                 "last run finished)", answers,
                 f"  created to COMPLETED p50 {r['completed_p50_s']:.2f} s, "
                 f"p95 {r['completed_p95_s']:.2f} s",
                 f"  CPU {r['cpu_ms_per_run']:.1f} ms/run ({cpu}); peak RSS {rss}",
                 f"  peak memory of relayflow's processes together: {pss}",
                 f"  this bench's client and sinks: CPU {r['bench_cpu_ms_per_run']:.1f} ms/run",
                 f"  stored {r['bytes_per_run']} bytes/run"]
    lines.append(f"  checks: {'; '.join(failed) if failed else 'all passed'}")
    print(*lines, sep="\n")  # noqa: T201
    if args.json:
        print(json.dumps({**r, "failed": failed}))  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
