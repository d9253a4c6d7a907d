"""Run history at scale: run and delivery listings over a large, realistic history.

    python bench/history.py                                  # 1,000,000 runs on SQLite
    python bench/history.py --runs 20000 --database postgres
    python bench/history.py --keep /var/tmp/h1m              # keep the loaded database
    python bench/history.py --reuse /var/tmp/h1m             # time it again, no load
    python bench/history.py --runs 100000 --prune --json history.json

A fresh database (an SQLite file, or a PostgreSQL database made on --database-url) gets
`relayflow migrate`, `relayflow workspace create` and `relayflow member add`, then 20 ACTIVE
workflows of four shapes (services). The product makes the template runs itself, through
its services and `Worker.run_once` with the clock 95 days back: per workflow, COMPLETED runs
(messages DELIVERED, SENT or BOUNCED), FAILED ones (an expression over a missing attribute,
a STOP_ERROR), a CANCELED one and one in flight (PENDING, or RUNNING at its WAIT).
Each loaded run copies one template's rows (run, steps, attempts, job, audit events) with
new UUIDv7 ids of its time, times shifted, and the contact's address and name and the order
number replaced in every text; every value keeps the stored form the product gave it. N
runs over the last 90 days for N/10 contacts (at most 100,000): about 5 steps and 0.64
attempts a run, 5% FAILED, 2% CANCELED, in flight only where a real run could be (a drip run
younger than its WAIT, a PENDING one of the last minutes), the rest COMPLETED. SQLite loads
by executemany in big transactions (synchronous=OFF on the loading connection only),
PostgreSQL by COPY, both through the tables' own INSERT, so their triggers fire. One copy of
every template is checked against it, column by column (null or not; on SQLite also the
storage class, and the length of ids and times).

What workers do in the background is done as they would, since serve runs without them: the
run count changes the triggers wrote are folded into the rollup after each commit of the
load, and what is left before timing (timed). Nothing the product does not
do itself: no ANALYZE on SQLite. SQLite's -wal file is checkpointed (big transactions leave
it as large as the last one, which is not data); on PostgreSQL autovacuum's ANALYZE is
awaited (3 minutes at most), as 90 days of real history would have had it, or on a server
with autovacuum off, the VACUUM and ANALYZE it would have run, run by the bench. The
header says whether the planner has statistics.

`relayflow serve --no-worker` is then timed over HTTP, one call at a time: each line of
PROBES (GET /api/v1/runs under each filter and at page 50, a run's detail, GET
/api/v1/deliveries, GET /api/v1/failures and the runs of its largest cause, the /runs,
/delivery-ops, /failures and /runs/{id} pages signed in as the member; runs searched by one
run's order number, q=)
3 calls to warm up, then p50/p95/max of 20; the CSV exports of every run and of every
delivery attempt once each (rows/s);
`relayflow prune --older-than 60d --dry-run` if prune has a dry run, the real prune with
--prune, with GET /api/v1/runs called back to back for IDLE_SECONDS before it and for as
long as it lasts (the two p95 compared). The figures are printed in one table, then the
targets they are judged by (lists, pages, run detail, the CSV export, a month's drop, the API
during a prune, bytes per run), each met or not. Every answer must be 200 and hold what its
filters ask for (exit 1 otherwise), so a broken route never shows as a fast one.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Table,
    Text,
    Uuid,
    cast,
    create_engine,
    func,
    select,
    text,
)

from relayflow.config import Settings
from relayflow.services import callback, run_history
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage import partitions
from relayflow.storage.db import make_engine, make_sessionmaker, normalize_url, session_scope
from relayflow.storage.ids import id_at
from relayflow.storage.models import (
    AuditEvent,
    Base,
    Contact,
    DeliveryAttempt,
    Job,
    RunStep,
    Workflow,
    WorkflowRun,
    Workspace,
)
from relayflow.storage.types import UTCDateTime
from relayflow.worker.loop import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support
from e2e import SECRET, Relayflow, pct, stored_bytes
from tests.support.databases import empty_database

SLUG = "history"
MEMBER, PASSWORD = "ops@history.test", "history-bench-password"
WINDOW, TEMPLATE_AGE, WAIT = timedelta(days=90), timedelta(days=95), timedelta(days=1)
PENDING_AGE = timedelta(minutes=5)  # a PENDING run is one of the last few minutes
FAILED_SHARE, CANCELED_SHARE = 0.05, 0.02
WARMUP, CALLS = 3, 20
IDLE_SECONDS = 20.0  # GET /api/v1/runs back to back before a prune, to compare with during
RUNS_PER_COMMIT, RUNS_PER_BATCH = 50_000, 5_000
ORDER = "ORD-0000000"  # the order number of a template run, replaced in every copy
FIRST = ["ada", "grace", "linus", "margaret", "alan", "barbara", "ken", "radia", "edsger",
         "frances", "dennis", "hedy", "tim", "katherine", "john", "sophie", "amara", "yuki"]
LAST = ["lovelace", "hopper", "torvalds", "hamilton", "turing", "liskov", "thompson",
        "perlman", "dijkstra", "allen", "ritchie", "lamarr", "berners", "johnson", "okafor"]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "acme.io"]
AREAS = [212, 310, 415, 512, 617, 646, 718, 773, 206, 305]
TABLES = [Base.metadata.tables[name] for name in ("workflow_runs", "run_steps",
                                                  "delivery_attempts", "jobs", "audit_events")]
CONTACTS = Base.metadata.tables["contacts"]
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+00:00")
console = Console(stderr=True)

# --- the workflows --------------------------------------------------------------------

SEND = {"type": "SEND_MESSAGE", "channel": "email", "next": "done",
        "subject": "Hi {{ contact.first_name }}, about order {{ event.order }}",
        "body": "Thanks {{ contact.first_name }}: order {{ event.order }} is on its way."}
SHAPES: dict[str, dict[str, Any]] = {
    "score": {  # 5 steps, no message
        "plan": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                 "then": "tag_pro", "else": "tag_std"},
        "tag_pro": {"type": "UPDATE_CONTACT", "set": {"segment": "pro"}, "next": "ab"},
        "tag_std": {"type": "UPDATE_CONTACT", "set": {"segment": "standard"}, "next": "ab"},
        "ab": {"type": "SPLIT", "branches": [{"name": "a", "weight": 1, "next": "done"},
                                             {"name": "b", "weight": 1, "next": "done"}]},
        "done": {"type": "END"}},
    "welcome": {  # 5 steps, 1 e-mail
        "plan": {"type": "CONDITION", "when": "contact.plan == 'blocked'",
                 "then": "refuse", "else": "note"},
        "refuse": {"type": "STOP_ERROR", "message": "{{ contact.email }} may not be written to"},
        "note": {"type": "UPDATE_CONTACT", "set": {"last_order": "{{ event.order }}"},
                 "next": "send"},
        "send": SEND, "done": {"type": "END"}},
    "drip": {  # 6 steps, an e-mail and an SMS a day apart
        "plan": {"type": "CONDITION", "when": "contact.plan == 'pro'",
                 "then": "send", "else": "send"},
        "send": {**SEND, "next": "wait"},
        "wait": {"type": "WAIT", "duration": "1d", "next": "nudge"},
        "nudge": {"type": "SEND_MESSAGE", "channel": "sms", "next": "done",
                  "body": "{{ contact.first_name }}, order {{ event.order }} waits for you."},
        "done": {"type": "END"}},
    "sms": {  # 5 steps, 1 SMS
        "plan": {"type": "CONDITION", "when": "contact.plan != 'blocked'",
                 "then": "note", "else": "done"},
        "note": {"type": "UPDATE_CONTACT", "set": {"last_code": "{{ event.order }}"},
                 "next": "send"},
        "send": {"type": "SEND_MESSAGE", "channel": "sms", "next": "done",
                 "body": "Order {{ event.order }}: your code is 482913."},
        "done": {"type": "END"}},
}
WORKFLOWS = [(key, "score") for key in (
    "lead-score", "plan-sync", "segment-refresh", "churn-risk", "nps-tagging", "trial-tagging",
    "region-sync", "ab-pricing")] + [(key, "welcome") for key in (
    "welcome", "order-receipt", "password-reset", "invoice-ready", "feature-news",
    "survey-invite", "cart-reminder")] + [("onboarding-drip", "drip"), ("winback-drip", "drip")] + [
    (key, "sms") for key in ("sms-code", "delivery-alert", "appointment-reminder")]


@dataclass(frozen=True, slots=True)
class Variant:
    """One template run of a workflow: what it ends as, for a contact with these attributes."""

    outcome: str  # completed, failed, canceled or inflight
    attributes: dict[str, str]
    weight: float = 1.0
    event: str | None = None  # the provider callback its messages get: delivered, bounced


VARIANTS = (Variant("completed", {"plan": "pro"}, 0.82, "delivered"),
            Variant("completed", {"plan": "free"}, 0.15),
            Variant("completed", {"plan": "pro"}, 0.03, "bounced"),
            Variant("failed", {}),  # `contact.plan` is undefined: the CONDITION fails
            Variant("canceled", {"plan": "pro"}), Variant("inflight", {"plan": "pro"}))
STOPPED = Variant("failed", {"plan": "blocked"})  # the welcome shape's STOP_ERROR


def phone_of(n: int) -> str:
    return f"+1{AREAS[n % len(AREAS)]}{200 + n // 10_000 % 800}{n % 10_000:04d}"


@dataclass(slots=True)
class Made:
    workflow: str
    shape: str
    variant: Variant
    n: int
    run_id: uuid.UUID | None = None

    @property
    def status(self) -> str:
        """What the run must be once made."""
        if self.variant.outcome == "inflight":
            return "RUNNING" if self.shape == "drip" else "PENDING"
        return {"completed": "COMPLETED", "failed": "FAILED"}.get(self.variant.outcome,
                                                                   "CANCELED")

    @property
    def contact(self) -> dict[str, Any]:
        """A distinct address and name, which the copies replace with their contact's."""
        spec: dict[str, Any] = {"email": f"template{self.n:03d}@history.test",
                                "attributes": {**self.variant.attributes,
                                               "first_name": f"Tplname{self.n:03d}"}}
        if self.shape in ("drip", "sms") or self.n % 2 == 0:
            spec["phone"] = phone_of(7_990_000 + self.n)
        return spec


def make_runs(url: str, workspace_id: uuid.UUID) -> list[Made]:
    """The template runs, made by the product: its services and its worker."""
    runtime = Runtime(sessions=make_sessionmaker(make_engine(url)), cipher=SecretCipher(SECRET))
    worker = Worker(runtime, Settings(database_url=url, batch_size=64))
    start = datetime.now(UTC) - TEMPLATE_AGE
    # When one run of a batch ends without an effect while another performs one, the
    # batch's next commit warns "lease lost" for the ended run (its job is gone already);
    # the rows are right, and capture() checks every run's status.
    logging.getLogger("relayflow.services.walk").setLevel(logging.ERROR)
    made = [Made(key, shape, variant, n) for n, (key, shape, variant) in enumerate(
        (key, shape, variant) for key, shape in WORKFLOWS
        for variant in (*VARIANTS, *((STOPPED,) if shape == "welcome" else ())))]

    def at(offset: timedelta) -> None:
        runtime.clock = lambda: start + offset

    def enroll(items: list[Made]) -> None:
        with session_scope(runtime.sessions) as session:
            for m in items:
                m.run_id = run_service.trigger_manual(
                    session, workspace_id=workspace_id, workflow_key=m.workflow,
                    contact=m.contact, event={"order": ORDER, "source": "shop"},
                    now=runtime.clock()).run.id

    def cancel(items: list[Made]) -> None:
        with session_scope(runtime.sessions) as session:
            for m in items:
                run_service.cancel(session, workspace_id=workspace_id, run_id=m.run_id or "",
                                   actor=MEMBER, now=runtime.clock())

    def drain() -> None:
        while worker.run_once():
            pass

    def chosen(outcome: str, waits: bool | None = None) -> list[Made]:
        return [m for m in made if m.variant.outcome == outcome
                and (waits is None or (m.shape == "drip") == waits)]

    at(timedelta())
    with session_scope(runtime.sessions) as session:
        for key, shape in WORKFLOWS:
            workflow_service.save(session, workspace_id=workspace_id, now=runtime.clock(),
                                  definition={"key": key, "name": key.replace("-", " ").title(),
                                              "trigger": {"type": "manual"}, "start": "plan",
                                              "nodes": SHAPES[shape]})
            workflow_service.activate(session, workspace_id=workspace_id, key=key,
                                      actor=MEMBER, now=runtime.clock())
    enroll(chosen("completed") + chosen("failed") + chosen("canceled", waits=True))
    drain()
    at(timedelta(seconds=1))
    cancel(chosen("canceled", waits=True))  # parked at its WAIT
    enroll(chosen("canceled", waits=False))
    cancel(chosen("canceled", waits=False))  # still PENDING
    at(WAIT + timedelta(seconds=2))
    drain()
    with session_scope(runtime.sessions) as session:
        for m in made:
            if m.variant.event is None:
                continue
            for attempt_id, channel in session.execute(select(
                    DeliveryAttempt.id, DeliveryAttempt.channel).where(
                    DeliveryAttempt.run_id == m.run_id)):
                event = {"type": m.variant.event, "attempt_id": str(attempt_id)}
                if m.variant.event == "bounced":  # soft: the contact is not suppressed
                    event["bounce"] = "soft"
                callback.apply_event(session, workspace_id=workspace_id, channel=channel,
                                     event=event, now=runtime.clock())
    at(2 * WAIT)
    enroll(chosen("inflight", waits=True))
    drain()  # parks them at their WAIT
    enroll(chosen("inflight", waits=False))  # left PENDING
    if worker.pool is not None:
        worker.pool.shutdown()
    runtime.dispose()
    return made


# --- templates: rows to copy ----------------------------------------------------------

Op = Callable[["Swap"], Any]


@dataclass(slots=True)
class Swap:
    """What one copy changes: ids (template id -> new id), the time shift, the contact."""

    ids: dict[uuid.UUID, uuid.UUID]
    delta: timedelta
    email: str
    phone: str | None
    first: str
    order: str
    times: dict[datetime, Any] = field(default_factory=dict)  # stored forms, shifted

    def time(self, at: datetime, bind: Callable[[Any], Any]) -> Any:
        """`at` shifted, in its stored form; a run's rows share a few times, made once."""
        stored = self.times.get(at)
        if stored is None:
            stored = self.times[at] = bind(at + self.delta)
        return stored

    def piece(self, token: tuple[Any, ...]) -> str:
        kind = token[0]
        if kind == "id":
            new = self.ids[token[1]]
            return new.hex if token[2] else str(new)
        if kind == "iso":
            return str((token[1] + self.delta).isoformat())
        return str(getattr(self, kind))


@dataclass(frozen=True, slots=True)
class RowPlan:
    """A template row as stored: fixed values, and ops for the columns each copy changes."""

    table: str
    key: uuid.UUID  # the row's id
    base: tuple[Any, ...]
    ops: tuple[tuple[int, Op], ...]
    step: tuple[uuid.UUID, int] | None = None  # a step's key: (run_id, seq)

    def copy(self, swap: Swap) -> tuple[Any, ...]:
        values = list(self.base)
        for index, op in self.ops:
            values[index] = op(swap)
        return tuple(values)


@dataclass(frozen=True, slots=True)
class ContactTemplate:
    """A template contact: its row and when it was made."""

    row: RowPlan
    created: datetime


@dataclass(frozen=True, slots=True)
class Template:
    workflow: str
    outcome: str
    weight: float
    created: datetime
    span: timedelta  # created to finished (0 while in flight)
    contact: uuid.UUID
    uses_phone: bool
    times: dict[uuid.UUID, datetime]  # each id to copy and the time its new id carries
    rows: tuple[RowPlan, ...]


def read_rows(conn: Connection, table: Table, where: Any) -> list[dict[str, Any]]:
    """Rows with JSON as the stored text, so JSON null and SQL NULL stay apart."""
    columns = [cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c
               for c in table.columns]
    return [dict(r) for r in conn.execute(select(*columns).where(where)).mappings()]


def _tokens(swap_of: dict[str, tuple[Any, ...]], value: str) -> tuple[Any, ...] | None:
    """`value` cut into text and tokens (ids, the contact, times), or None without any."""
    pattern = "|".join([re.escape(t) for t in sorted(swap_of, key=len, reverse=True)]
                       + [ISO.pattern])
    parts = re.split(f"({pattern})", value)
    if len(parts) == 1:
        return None
    return tuple(swap_of.get(p) or (("iso", datetime.fromisoformat(p)) if i % 2 else p)
                 for i, p in enumerate(parts) if p)


def plan_row(table: Table, row: dict[str, Any], remap: set[uuid.UUID],
             swap_of: dict[str, tuple[Any, ...]], dialect: Any) -> RowPlan:
    """The row as the database stores it (the columns' own bind processors: JSON is kept as
    the text read), and what each copy changes: ids, times, texts holding tokens."""
    base: list[Any] = []
    ops: list[tuple[int, Op]] = []
    for index, column in enumerate(table.columns):
        value = row[column.name]
        bind = (None if isinstance(column.type, JSON)
                else column.type.bind_processor(dialect)) or _same
        base.append(bind(value) if value is not None else None)
        if isinstance(value, uuid.UUID) and value in remap:
            ops.append((index, partial(_new_id, value, bind)))
        elif isinstance(value, datetime):
            ops.append((index, partial(_shifted, value, bind)))
        elif isinstance(value, str) and (pieces := _tokens(swap_of, value)) is not None:
            ops.append((index, partial(_text, pieces)))
    key = row["run_id"] if table.name == "jobs" else row["id"]
    step = (row["run_id"], row["seq"]) if table.name == "run_steps" else None
    return RowPlan(table.name, key, tuple(base), tuple(ops), step)


def _same(value: Any) -> Any:
    return value


def _new_id(old: uuid.UUID, bind: Callable[[Any], Any], swap: Swap) -> Any:
    return bind(swap.ids[old])


def _shifted(at: datetime, bind: Callable[[Any], Any], swap: Swap) -> Any:
    return swap.time(at, bind)


def _text(pieces: tuple[Any, ...], swap: Swap) -> str:
    return "".join(p if isinstance(p, str) else swap.piece(p) for p in pieces)


def contact_tokens(contact: dict[str, Any], ids: set[uuid.UUID]) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {ORDER: ("order",), contact["email"]: ("email",),
                                         json.loads(contact["attributes"])["first_name"]:
                                         ("first",)}
    if contact["phone"]:
        found[contact["phone"]] = ("phone",)
    for i in ids:
        found[str(i)], found[i.hex] = ("id", i, False), ("id", i, True)
    return found


def capture(engine: Engine, made: list[Made]) -> tuple[list[Template], dict[bool, ContactTemplate]]:
    """Every template run's rows, and two contacts (with and without a phone) to copy."""
    templates: list[Template] = []
    contacts: dict[bool, ContactTemplate] = {}
    with engine.connect() as conn:
        for m in made:
            run = read_rows(conn, TABLES[0], WorkflowRun.id == m.run_id)[0]
            if run["status"] != m.status:
                raise SystemExit(f"template run of {m.workflow} ({m.variant}) is "
                                 f"{run['status']}, not {m.status}: {run['error']}")
            rows = [(TABLES[0], run)] + [(t, r) for t, where in (
                (TABLES[1], RunStep.run_id == m.run_id), (TABLES[3], Job.run_id == m.run_id),
                (TABLES[2], DeliveryAttempt.run_id == m.run_id),
                (TABLES[4], (AuditEvent.target_type == "run")
                 & (AuditEvent.target_id == str(m.run_id)))) for r in read_rows(conn, t, where)]
            contact = read_rows(conn, CONTACTS, Contact.id == run["contact_id"])[0]
            times = {r["id"]: r.get("created_at") or r.get("started_at") or r["at"]
                     for t, r in rows if t.name != "jobs"}
            swap_of = contact_tokens(contact, {*times, contact["id"]})
            plans = tuple(plan_row(t, r, {*times, contact["id"]}, swap_of, engine.dialect)
                          for t, r in rows)
            phone = contact["phone"]
            uses_phone = any(phone and phone in str(r.get(c.name)) for t, r in rows
                             for c in t.columns)
            templates.append(Template(
                m.workflow, m.variant.outcome, m.variant.weight, run["created_at"],
                (run["finished_at"] or run["created_at"]) - run["created_at"], contact["id"],
                bool(uses_phone), times, plans))
            contacts.setdefault(phone is not None, ContactTemplate(plan_row(
                CONTACTS, contact, {contact["id"]}, contact_tokens(contact, set()),
                engine.dialect), contact["created_at"]))
    if len(contacts) != 2:
        raise SystemExit("the template contacts need one with a phone and one without")
    return templates, contacts


# --- the load -------------------------------------------------------------------------


class Writer:
    """Inserts rows in big transactions: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.conn = engine.connect()
        self.sqlite = engine.dialect.name == "sqlite"
        self.rows = 0
        if self.sqlite:  # this connection only: serve's connections keep synchronous=NORMAL
            self.conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA synchronous=OFF")
        self.names = {t.name: [c.name for c in t.columns] for t in [*TABLES, CONTACTS]}

    def insert(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(self.names[table])
        if self.sqlite:
            marks = ", ".join("?" * len(self.names[table]))
            self.conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        else:
            if not self.conn.in_transaction():  # so that conn.commit() commits the COPY
                self.conn.begin()
            raw: Any = self.conn.connection.dbapi_connection
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        self.rows += len(rows)


def load_contacts(writer: Writer, bases: dict[bool, ContactTemplate], count: int, start: datetime,
                  rng: random.Random) -> list[tuple[uuid.UUID, Swap]]:
    """Copies of the template contacts, 70% with a phone, made over the 30 days before the
    history begins: each one's id, and what a run of it puts in its texts."""
    pool, rows = [], []
    for n in range(count):
        at = start - timedelta(days=30) * (1 - (n + rng.random()) / count)
        base = bases[rng.random() < 0.7]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        new = id_at(at, rng)
        swap = Swap({base.row.key: new}, at - base.created,
                    f"{first}.{last}{n}@{rng.choice(DOMAINS)}",
                    phone_of(n) if base is bases[True] else None, first.title(), "")
        rows.append(base.row.copy(swap))
        pool.append((new, swap))
    writer.insert("contacts", rows)
    writer.conn.commit()
    return pool


def pick(templates: list[Template], by_workflow: dict[str, dict[str, list[int]]],
         age: timedelta, rng: random.Random) -> int:
    """A template for a run of this age: in flight only where a real one could be."""
    outcomes = by_workflow[WORKFLOWS[rng.randrange(len(WORKFLOWS))][0]]
    roll = rng.random()
    outcome = ("inflight" if age < PENDING_AGE and roll < 0.5 else "failed" if roll < FAILED_SHARE
               else "canceled" if roll < FAILED_SHARE + CANCELED_SHARE else "completed")
    options = outcomes[outcome]
    index = rng.choices(options, weights=[templates[i].weight for i in options])[0]
    if templates[index].span > age:  # it would have finished after now: still in flight
        return outcomes["inflight"][0]
    return index


def load_runs(writer: Writer, templates: list[Template], pool: list[tuple[uuid.UUID, Swap]],
              runs: int, now: datetime, rng: random.Random, progress: Progress,
              fold: Callable[[], object]) -> dict[int, Swap]:
    """`runs` copies over the last 90 days, oldest first; the last copy of each template.
    After each commit the count changes its triggers wrote are folded (`fold`), as workers
    fold them every few seconds: the changes table stays small and the pages its folded rows
    free are written again, so the database's size is the history's, not the load's."""
    with_phone = [n for n, (_, contact) in enumerate(pool) if contact.phone]
    by_workflow: dict[str, dict[str, list[int]]] = {}
    for i, t in enumerate(templates):
        by_workflow.setdefault(t.workflow, {}).setdefault(t.outcome, []).append(i)
    last: dict[int, Swap] = {}
    batch: dict[str, list[tuple[Any, ...]]] = {t.name: [] for t in TABLES}
    task = progress.add_task("runs", total=runs, rate="")
    started, start = time.perf_counter(), now - WINDOW
    for i in range(runs):
        created = start + WINDOW * ((i + rng.random()) / runs)
        index = pick(templates, by_workflow, now - created, rng)
        t = templates[index]
        contact_id, c = pool[rng.choice(with_phone) if t.uses_phone else rng.randrange(len(pool))]
        delta = created - t.created
        ids = {old: id_at(at + delta, rng) for old, at in t.times.items()}
        ids[t.contact] = contact_id
        swap = Swap(ids, delta, c.email, c.phone, c.first, f"ORD-{i:07d}")
        for row in t.rows:
            batch[row.table].append(row.copy(swap))
        last[index] = swap
        if (i + 1) % RUNS_PER_BATCH and i + 1 < runs:
            continue
        for table in TABLES:
            writer.insert(table.name, batch[table.name])
            batch[table.name] = []
        if (i + 1) % RUNS_PER_COMMIT == 0 or i + 1 == runs:
            writer.conn.commit()
            fold()
        rate = writer.rows / (time.perf_counter() - started)
        progress.update(task, completed=i + 1, rate=f"{rate:,.0f} rows/s")
    return last


def signature(conn: Connection, table: Table, key: uuid.UUID, sqlite: bool,
              step: tuple[uuid.UUID, int] | None = None) -> list[str] | None:
    """Per column: null or not; on SQLite its storage class, and the length of ids and times
    (their text form). A step is found by its key, (run_id, seq): no index holds its id."""
    pk = table.c.run_id if table.name == "jobs" else table.c.id
    where = pk == key
    if step is not None:
        where = where & (table.c.run_id == step[0]) & (table.c.seq == step[1])
    if not sqlite:
        found = conn.execute(select(*[c.is_(None) for c in table.columns]).where(where))
        row = found.first()
        return None if row is None else [f"{c.name}:{'null' if v else 'set'}"
                                         for c, v in zip(table.columns, row, strict=True)]
    exprs = [e for c in table.columns for e in (func.typeof(c), func.length(c))]
    row = conn.execute(select(*exprs).where(where)).first()
    if row is None:
        return None
    fixed = [isinstance(c.type, (Uuid, UTCDateTime)) for c in table.columns]
    return [f"{c.name}:{row[2 * i]}" + (f":{row[2 * i + 1]}" if fixed[i] else "")
            for i, c in enumerate(table.columns)]


def check_copies(engine: Engine, templates: list[Template], last: dict[int, Swap],
                 bases: dict[bool, ContactTemplate], pool: list[tuple[uuid.UUID, Swap]]) -> int:
    """Compares one copy of every template, row by row, with the rows the product wrote."""
    tables = {t.name: t for t in [*TABLES, CONTACTS]}
    sqlite = engine.dialect.name == "sqlite"
    pairs = [(tables[row.table], (row.key, row.step),
              (swap.ids[row.key], row.step and (swap.ids[row.step[0]], row.step[1])))
             for index, swap in last.items() for row in templates[index].rows]
    for has_phone, base in bases.items():
        new = next(new for new, contact in pool if bool(contact.phone) == has_phone)
        pairs.append((CONTACTS, (base.row.key, None), (new, None)))
    problems = []
    with engine.connect() as conn:
        for table, (template_key, template_step), (copy_key, copy_step) in pairs:
            want = signature(conn, table, template_key, sqlite, template_step)
            got = signature(conn, table, copy_key, sqlite, copy_step)
            if want is None or want != got:
                mine, theirs = set(got or []) - set(want or []), set(want or []) - set(got or [])
                problems.append(f"{table.name} {copy_key}: {sorted(mine)} where the product "
                                f"wrote {sorted(theirs)}")
    if problems:
        raise SystemExit("loaded rows unlike the product's:\n  " + "\n  ".join(problems[:10]))
    return len(pairs)


# --- the database ---------------------------------------------------------------------


@contextmanager
def fresh_database(args: argparse.Namespace, workdir: Path) -> Iterator[str]:
    """The scratch database, dropped afterwards unless --keep."""
    if args.database == "sqlite":
        path = (args.keep or workdir) / "history.db"
        if path.exists():
            raise SystemExit(f"{path} exists: time it with --reuse {path.parent}")
        path.parent.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{path}"
    elif args.keep is None:
        with empty_database(args.database_url, workdir) as url:
            yield url
    else:
        name = f"relayflow_history_{args.runs}"
        admin = create_engine(normalize_url(args.database_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        args.keep.mkdir(parents=True, exist_ok=True)
        yield args.database_url.rsplit("/", 1)[0] + "/" + name


def reused(target: str) -> tuple[str, dict[str, Any]]:
    """The database of an earlier --keep (a directory) or a PostgreSQL URL, and what the
    earlier run wrote about its load."""
    if target.startswith("postgres"):
        return target, {}
    directory = Path(target)
    meta = directory / "history.json"
    loaded = json.loads(meta.read_text()) if meta.exists() else {}
    url = loaded.pop("url", "sqlite:")
    if url.startswith("sqlite"):  # the file in the directory given (which may be a copy)
        url = f"sqlite:///{directory.resolve() / 'history.db'}"
        if not (directory / "history.db").exists():
            raise SystemExit(f"nothing to reuse in {directory}")
    return url, loaded


def build(relayflow: Relayflow, url: str, runs: int) -> tuple[dict[str, Any], str]:
    """Sets the database up through the product and loads it: load figures, the API key."""
    relayflow.command("migrate")
    api_key = json.loads(relayflow.command("workspace", "create", SLUG, "--json"))["api_key"]
    relayflow.command("member", "add", SLUG, MEMBER, "--password", PASSWORD)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            workspace_id = conn.scalar(select(Workspace.id).where(Workspace.slug == SLUG))
        assert workspace_id is not None
        templates, bases = capture(engine, make_runs(url, workspace_id))
        rng, now, writer = random.Random(7), datetime.now(UTC), Writer(engine)
        with engine.begin() as conn:  # PostgreSQL: the months the history spans
            partitions.ensure(conn, now - WINDOW, now)
        started = time.perf_counter()
        with Progress(TextColumn("{task.description:8}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("contacts", total=1, rate="")
            pool = load_contacts(writer, bases, max(50, min(100_000, runs // 10)),
                                 now - WINDOW, rng)
            progress.update(task, completed=1)
            last = load_runs(writer, templates, pool, runs, now, rng, progress,
                             lambda: catch_up(url))
        seconds = time.perf_counter() - started
        writer.conn.close()
        checked = check_copies(engine, templates, last, bases, pool)
    finally:
        engine.dispose()
    console.print(f"loaded {writer.rows:,} rows in {seconds:.1f} s; {checked} copied rows "
                  f"checked against the product's")
    return {"load_seconds": round(seconds, 1), "load_rows": writer.rows,
            "load_rows_per_s": round(writer.rows / seconds)}, api_key


def settle(url: str) -> None:
    """SQLite: the -wal file emptied into the database. PostgreSQL: autovacuum's ANALYZE
    awaited (3 minutes at most) when autovacuum is on; when this server has it off (not
    PostgreSQL's default), the VACUUM and ANALYZE it would have run, run here. Then what
    the load (or a copy of the file) left in the page cache is written out (sync): the
    kernel would otherwise write gigabytes to disk while the first probes are timed."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        analyzed(url)
    os.sync()


def analyzed(url: str) -> None:
    """PostgreSQL: wait for autovacuum's ANALYZE, or where autovacuum is off, run what it
    would have done over 90 days of history: VACUUM (the visibility map that lets an
    index answer alone; since PostgreSQL 13 autovacuum vacuums tables that only grow) and
    ANALYZE."""
    deadline = time.monotonic() + 180
    while True:
        found = statistics(url)
        if "autovacuum off" in found:
            engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE)")
            engine.dispose()
            return
        if found.startswith("4 ") or time.monotonic() > deadline:
            return
        time.sleep(5)


def statistics(url: str) -> str:
    """Whether the planner has statistics for the big tables (nothing here makes them)."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            found = conn.execute("SELECT count(*) FROM sqlite_master "
                                 "WHERE name = 'sqlite_stat1'").fetchone()[0]
        return "sqlite_stat1 present" if found else "none (no ANALYZE)"
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        analyzed = conn.scalar(text(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('workflow_runs', "
            "'run_steps', 'delivery_attempts', 'contacts') "
            "AND coalesce(last_analyze, last_autoanalyze) IS NOT NULL"))
        autovacuum = conn.scalar(text("SHOW autovacuum"))
    engine.dispose()
    return f"{analyzed} of 4 tables analyzed (autovacuum {autovacuum})"


def catch_up(url: str) -> float:
    """What workers do in the background, done before timing (serve runs without them): the
    run count changes the load's triggers wrote, folded into the rollup. Seconds taken."""
    runtime = Runtime(sessions=make_sessionmaker(make_engine(url)), cipher=SecretCipher(SECRET))
    started = time.perf_counter()
    while run_history.fold_counts(runtime.sessions):
        pass
    run_history.vacuum_counts(runtime.sessions)  # as a worker does after its folds
    runtime.dispose()
    return time.perf_counter() - started


def describe(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
                  for name, table in (("runs", TABLES[0]), ("steps", TABLES[1]),
                                      ("attempts", TABLES[2]), ("contacts", CONTACTS))}
        version = (sqlite3.sqlite_version if url.startswith("sqlite")
                   else conn.scalar(text("SHOW server_version")))
    size = stored_bytes(engine, url)
    engine.dispose()
    kind = "sqlite" if url.startswith("sqlite") else "postgres"
    return {"database": f"{kind} {version}", **counts,
            "bytes_per_run": round(size / max(1, counts["runs"])), "statistics": statistics(url)}


# --- what is timed --------------------------------------------------------------------


@dataclass(slots=True)
class Facts:
    """What the probes ask for, found in the loaded history ({name} in PROBES)."""

    now: datetime
    workflow: str = ""
    contact: str = ""
    contact_id: str = ""
    contact_workflow: str = ""  # the workflow with most of the contact's runs
    contact_runs: int = 0
    run_id: str = ""
    custom_from: str = ""
    custom_to: str = ""
    cursor50: str = ""
    page49_at: str = ""
    fingerprint: str = ""  # the cause with the most failed runs
    order: str = ""  # the order number in run_id's payload: a search finds that run alone


@dataclass(frozen=True, slots=True)
class Probe:
    """One route to time. {name} is a field of Facts. An API listing must hold rows, each
    as its filters ask; a run's detail must be that run; a page (not under /api) must hold
    `expect`, and only rows of its status when it asks for one."""

    what: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    expect: str = ""


RUNS, FAILURES, DAY = "/api/v1/runs", "/api/v1/failures", timedelta(days=1)
PROBES = (
    Probe("api runs: no filter (page 1)", RUNS),
    Probe("api runs: status=FAILED", RUNS, {"status": "FAILED"}),
    Probe("api runs: workflow={workflow}", RUNS, {"workflow": "{workflow}"}),
    Probe("api runs: contact ({contact_runs} runs)", RUNS, {"contact": "{contact}"}),
    Probe("api runs: range=24h", RUNS, {"range": "24h"}),
    Probe("api runs: range=30d", RUNS, {"range": "30d"}),
    Probe("api runs: from/to (a week, 2 months ago)", RUNS,
          {"from": "{custom_from}", "to": "{custom_to}"}),
    Probe("api runs: FAILED + workflow + 30d", RUNS,
          {"status": "FAILED", "workflow": "{workflow}", "range": "30d"}),
    Probe("api runs: page 50", RUNS, {"cursor": "{cursor50}"}),
    Probe("api run detail", RUNS + "/{run_id}"),
    Probe("api deliveries: no filter", "/api/v1/deliveries"),
    Probe("api deliveries: contact", "/api/v1/deliveries", {"contact": "{contact}"}),
    Probe("page /runs: all time", "/runs", {"range": "custom"}, 'data-run-id="'),
    Probe("page /runs: FAILED, all time", "/runs", {"range": "custom", "status": "FAILED"},
          'data-run-id="'),
    Probe("page /delivery-ops: all time", "/delivery-ops", {"range": "all"}, 'data-attempt="'),
    Probe("page /delivery-ops: BOUNCED, all time", "/delivery-ops",
          {"range": "all", "status": "BOUNCED"}, 'data-attempt="'),
    Probe("page /runs/{{id}}", "/runs/{run_id}", expect="{run_id}"),
    Probe("api failures: 30d", FAILURES, {"range": "30d"}),
    Probe("api failures: runs of {workflow}, 7d", FAILURES,
          {"kind": "run", "workflow": "{workflow}", "range": "7d"}),
    Probe("api runs: one cause (fingerprint)", RUNS,
          {"status": "FAILED", "fingerprint": "{fingerprint}"}),
    Probe("page /failures: 30d", "/failures", {"range": "30d"}, 'data-fingerprint="'),
    Probe("api runs: search an order number", RUNS, {"q": "{order}"}),
    Probe("api runs: search order:NUMBER", RUNS, {"q": "order:{order}"}),
    Probe("api runs: search an order number and a word of every run", RUNS,
          {"q": "{order} shop"}),
    Probe("page /runs: search an order number", "/runs", {"q": "{order}", "range": "custom"},
          'data-run-id="{run_id}"'),
    Probe("api explain: the contact's {contact_workflow}, 30d",
          "/api/v1/contacts/{contact_id}/explain",
          {"workflow": "{contact_workflow}", "range": "30d"}),
)


def fits(item: dict[str, Any], params: dict[str, str], facts: Facts) -> bool:
    """Whether one row of a listing is what the filters in `params` ask for."""
    if "pattern" in item:  # a failure group
        return (item["count"] > 0 and sum(item["sparkline"]) == item["count"]
                and params.get("kind") in (None, item["kind"])
                and params.get("workflow") in (None, item["workflow"]))
    at = datetime.fromisoformat(item["created_at"])
    span = run_service.RANGES.get(params.get("range", ""))
    return (params.get("status") in (None, item["status"])
            and params.get("fingerprint") in (None, item.get("fingerprint"))
            and params.get("workflow") in (None, item["workflow"])
            and params.get("contact") in (None, (item["contact"] or {}).get("email"))
            and (span is None or at >= facts.now - span)
            and ("from" not in params or datetime.fromisoformat(params["from"]) <= at
                 < datetime.fromisoformat(params["to"]))
            and ("cursor" not in params or at <= datetime.fromisoformat(facts.page49_at))
            and ("q" not in params or item["id"] == facts.run_id))


def problem(probe: Probe, params: dict[str, str], response: httpx.Response,
            facts: Facts) -> str | None:
    if response.status_code != 200:
        return f"answered {response.status_code}: {response.text[:300]}"
    if not probe.path.startswith("/api"):
        statuses = set(re.findall(r'data-status="([A-Z]+)"', response.text))
        if probe.expect.format(**asdict(facts)) not in response.text:
            return f"no {probe.expect} in the page"
        if "status" in params and statuses - {params["status"]}:
            return f"rows of {statuses}"
        return None
    body = response.json()
    if "verdict" in body:  # an explanation: of that contact and workflow, with its reasons
        return None if (body["contact"]["id"] == facts.contact_id and body["reasons"]
                        and body["workflow"] == params["workflow"]) else f"not that: {body}"
    if "items" not in body:
        return None if body["id"] == facts.run_id and body["steps"] else "not that run"
    wrong = [item for item in body["items"] if not fits(item, params, facts)]
    if not body["items"]:
        return "no rows"
    return f"{len(wrong)} of {len(body['items'])} rows not as asked: {wrong[0]}" if wrong else None


@dataclass(frozen=True, slots=True)
class Result:
    what: str
    calls: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    rows_per_s: float | None = None

    @classmethod
    def of(cls, what: str, samples: list[float], rows_per_s: float | None = None) -> Result:
        return cls(what, len(samples), round(pct(samples, 0.5), 1),
                   round(pct(samples, 0.95), 1), round(max(samples), 1), rows_per_s)


def call(client: httpx.Client, probe: Probe, facts: Facts) -> float:
    """One call, timed in ms; exits unless it answers 200 with what the probe asks for."""
    values = asdict(facts)
    params = {name: value.format(**values) for name, value in probe.params.items()}
    gc.disable()  # the server is timed, not this process's collector: it runs between calls
    try:
        started = time.perf_counter()
        response = client.get(probe.path.format(**values), params=params)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        gc.enable()
    wrong = problem(probe, params, response, facts)
    if wrong:
        raise SystemExit(f"GET {response.url}: {wrong}")
    return elapsed


def sign_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=600)
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    answer = client.post("/login", data={"email": MEMBER, "password": PASSWORD, "next": "/runs",
                                         "login_token": token[1] if token else ""})
    if answer.status_code != 303:
        raise SystemExit(f"signing in as {MEMBER}: {answer.status_code} {answer.text[:300]}")
    return client


def find_facts(url: str, api: httpx.Client) -> Facts:
    """A workflow with recent FAILED runs, a contact with about 10 runs and some messages,
    a run with a message from mid-history, a custom week, and page 50's cursor."""
    now = datetime.now(UTC)
    facts = Facts(now, custom_from=(now - 60 * DAY).isoformat(),
                  custom_to=(now - 53 * DAY).isoformat())
    engine = make_engine(url)
    with engine.connect() as conn:
        ws = conn.scalar(select(Workspace.id).where(Workspace.slug == SLUG))
        facts.workflow = conn.scalar(
            select(Workflow.key).join(WorkflowRun, WorkflowRun.workflow_id == Workflow.id)
            .where(WorkflowRun.workspace_id == ws, WorkflowRun.status == "FAILED",
                   WorkflowRun.created_at >= now - 30 * DAY)
            .order_by(WorkflowRun.created_at.desc()).limit(1)) or ""
        runs = func.count()
        near = conn.execute(select(WorkflowRun.contact_id, runs)
                            .where(WorkflowRun.workspace_id == ws)
                            .group_by(WorkflowRun.contact_id)
                            .order_by(func.abs(runs - 10)).limit(50)).all()
        sent = set(conn.scalars(select(DeliveryAttempt.contact_id).where(
            DeliveryAttempt.contact_id.in_([c for c, _ in near if c is not None]))))
        contact_id, facts.contact_runs = next(((c, n) for c, n in near if c in sent), (None, 0))
        facts.contact = conn.scalar(select(Contact.email).where(Contact.id == contact_id)) or ""
        facts.contact_id = str(contact_id or "")
        facts.contact_workflow = conn.scalar(
            select(Workflow.key).join(WorkflowRun, WorkflowRun.workflow_id == Workflow.id)
            .where(WorkflowRun.workspace_id == ws, WorkflowRun.contact_id == contact_id)
            .group_by(Workflow.key).order_by(func.count().desc()).limit(1)) or ""
        facts.fingerprint = conn.scalar(
            select(WorkflowRun.fingerprint).where(WorkflowRun.workspace_id == ws,
                                                  WorkflowRun.fingerprint.is_not(None))
            .group_by(WorkflowRun.fingerprint).order_by(func.count().desc()).limit(1)) or ""
        facts.run_id = str(conn.scalar(
            select(DeliveryAttempt.run_id)
            .where(DeliveryAttempt.workspace_id == ws, DeliveryAttempt.run_id.is_not(None),
                   DeliveryAttempt.created_at < now - WINDOW / 2)
            .order_by(DeliveryAttempt.created_at.desc()).limit(1)) or "")
        payload = conn.scalar(select(WorkflowRun.trigger_payload).where(
            WorkflowRun.id == uuid.UUID(facts.run_id))) if facts.run_id else None
        facts.order = str((payload or {}).get("order") or "")
    engine.dispose()
    if not (facts.workflow and facts.contact and facts.run_id and facts.fingerprint
            and facts.contact_workflow and facts.order):
        raise SystemExit(f"the history lacks what the probes need: {facts}")
    cursor: str | None = None
    for _ in range(49):
        page = api.get(RUNS, params={"cursor": cursor} if cursor else {})
        if page.status_code != 200:
            raise SystemExit(f"GET {page.url}: {page.status_code} {page.text[:300]}")
        cursor = page.json()["next_cursor"]
        if not cursor:
            raise SystemExit("fewer than 50 pages of runs")
        facts.page49_at = page.json()["items"][-1]["created_at"]
    facts.cursor50 = cursor or ""
    return facts


def time_probe(client: httpx.Client, probe: Probe, facts: Facts) -> Result:
    samples = [call(client, probe, facts) for _ in range(WARMUP + CALLS)][WARMUP:]
    result = Result.of(probe.what.format(**asdict(facts)), samples)
    console.print(f"  {result.what}: p50 {result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms")
    return result


# The CSV exports, each of every row over all time: (path, query, what a row is).
EXPORTS = (("/runs.csv", {"range": "custom"}, "run"),
           ("/delivery-ops.csv", {"range": "all"}, "attempt"))


def time_export(page: httpx.Client, path: str, params: dict[str, str], noun: str,
                rows: int) -> Result:
    """One CSV export streamed once: rows/s (the row count must be every row). A row ends
    in CRLF; a quoted cell may hold a bare LF, so CRLFs are counted (a chunk may split one)."""
    lines = size = 0
    last = b""
    started = time.perf_counter()
    with page.stream("GET", path, params=params) as response:
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code}")
        for chunk in response.iter_bytes():
            lines += (last + chunk[:1]).count(b"\r\n") + chunk.count(b"\r\n")
            last, size = chunk[-1:], size + len(chunk)
    seconds = time.perf_counter() - started
    if lines - 1 != rows:
        raise SystemExit(f"GET {path}: {lines - 1} rows for {rows} {noun}s")
    return Result.of(f"CSV export of every {noun}, {size / 1e6:.0f} MB", [seconds * 1000],
                     round(rows / seconds))


def time_prune(relayflow: Relayflow, api: httpx.Client, facts: Facts, real: bool) -> list[Result]:
    """`prune --older-than 60d`, as a dry run if prune has one, for real with --prune;
    GET /api/v1/runs timed over and over while it runs."""
    dry = "--dry-run" in relayflow.command("prune", "--help")
    if not (real or dry):
        console.print("  prune has no --dry-run: not timed (--prune deletes for real)")
        return []
    command = ["prune", "--older-than", "60d", *([] if real else ["--dry-run"])]
    failed: list[BaseException] = []
    said: list[str] = []

    def run() -> None:
        try:
            said.append(relayflow.command(*command))
        except BaseException as exc:  # SystemExit too: a thread would swallow it
            failed.append(exc)

    idle, until = [], time.perf_counter() + IDLE_SECONDS
    while time.perf_counter() < until:
        idle.append(call(api, PROBES[0], facts))
    worker = threading.Thread(target=run)
    started = time.perf_counter()
    worker.start()
    beside = []
    while worker.is_alive():
        beside.append(call(api, PROBES[0], facts))
    worker.join()
    seconds = time.perf_counter() - started
    if failed:
        raise SystemExit(f"relayflow {' '.join(command)}: {failed[0]}")
    console.print(f"  relayflow {' '.join(command)}: {' '.join(said[0].split())}")
    drops = [Result.of(f"drop {name}, {rows} rows", [float(took) * 1000])
             for name, rows, took in DROPPED.findall(said[0])]
    name = "prune" if real else "dry run"
    before, during = (Result.of(f"api runs: no filter, back to back {when} the {name}", samples)
                      for when, samples in (("before", idle), ("during", beside)))
    console.print(f"  api runs p95 during the {name}: {during.p95_ms / before.p95_ms:.2f} "
                  "times before it")
    return [Result.of(f"relayflow {' '.join(command)} (process)", [seconds * 1000]),
            *drops, before, during]


DROPPED = re.compile(r"dropped (\S+): ([\d,]+) rows in ([\d.]+) s")


def verdicts(header: dict[str, Any], results: list[Result]) -> list[tuple[str, str, bool]]:
    """The targets of the figures this run has: (target, the figure it is judged by, met)."""
    def worst(rows: list[Result]) -> Result:
        return max(rows, key=lambda r: r.p95_ms)

    lists_ms = 50.0 if header["runs"] < 10_000_000 else 100.0  # the two sizes
    groups = (
        (f"lists, p95 <= {lists_ms:.0f} ms", lists_ms,
         [r for r in results if r.what.startswith(("api runs:", "api deliveries:"))
          and "back to back" not in r.what and "search" not in r.what]),
        ("pages /runs and /delivery-ops, p95 <= 150 ms", 150.0,
         [r for r in results if r.what.startswith(("page /runs:", "page /delivery-ops:"))]),
        ("failures, API and page, p95 <= 150 ms", 150.0,
         [r for r in results if r.what.startswith(("api failures:", "page /failures:"))]),
        ("run detail, API and page, p95 <= 20 ms", 20.0,
         [r for r in results if r.what in ("api run detail", "page /runs/{id}")]),
        ("search, one run's order number, p95 <= 300 ms", 300.0,
         [r for r in results if "search" in r.what]),
        ("why not? (explain), p95 <= 100 ms", 100.0,
         [r for r in results if r.what.startswith("api explain:")]),
        ("a month's runs dropped in < 5 s", 5000.0,
         [r for r in results if r.what.startswith("drop workflow_runs")]),
    )
    out = []
    for target, limit, rows in groups:
        if rows:
            r = worst(rows)
            out.append((target, f"{r.p95_ms:,.1f} ms ({r.what})", r.p95_ms <= limit))
    for export in (r for r in results if r.rows_per_s):
        noun = export.what.split(",")[0].removeprefix("CSV export of every ")
        out.append((f"CSV export of {noun}s >= 50,000 rows/s",
                    f"{export.rows_per_s:,.0f} rows/s", export.rows_per_s >= 50_000))
    pair = [r for r in results if r.what.endswith(("before the prune", "during the prune"))]
    if len(pair) == 2:
        ratio = pair[1].p95_ms / pair[0].p95_ms
        out.append(("API p95 during a prune <= 2 times before it",
                    f"{ratio:.2f} ({pair[1].p95_ms:,.1f} / {pair[0].p95_ms:,.1f} ms)",
                    ratio <= 2))
    out.append(("stored bytes per run <= 3,000", f"{header['bytes_per_run']:,}",
                header["bytes_per_run"] <= 3000))
    return out


def measure(relayflow: Relayflow, api_key: str, url: str, counts: dict[str, int],
            prune: bool) -> list[Result]:
    api = httpx.Client(base_url=relayflow.base, timeout=600,
                       headers={"Authorization": f"Bearer {api_key}"})
    with closing(api), closing(sign_in(relayflow.base)) as page:
        facts = find_facts(url, api)
        results = [time_probe(api if probe.path.startswith("/api") else page, probe, facts)
                   for probe in PROBES]
        results += [time_export(page, path, params, noun, counts[noun])
                    for path, params, noun in EXPORTS]
        results += time_prune(relayflow, api, facts, prune)
    return results


def report(header: dict[str, Any], results: list[Result], path: Path | None) -> None:
    h = header
    per_run = max(1, h["runs"])
    load = (f"; load {h['load_seconds']:.0f} s, {h['load_rows_per_s']:,} rows/s"
            if "load_seconds" in h else "")
    load += f"; count changes folded in {h['fold_seconds']:.1f} s"
    out = Console(width=110)
    out.print(f"{h['database']}: {h['runs']:,} runs, {h['steps']:,} steps "
              f"({h['steps'] / per_run:.2f}/run), {h['attempts']:,} attempts "
              f"({h['attempts'] / per_run:.2f}/run), {h['contacts']:,} contacts\n"
              f"{h['bytes_per_run']:,} bytes/run{load}; statistics: {h['statistics']}",
              highlight=False)
    table = RichTable("what", "calls", "p50 ms", "p95 ms", "max ms", "rows/s")
    for r in results:
        table.add_row(r.what, str(r.calls), f"{r.p50_ms:,.1f}", f"{r.p95_ms:,.1f}",
                      f"{r.max_ms:,.1f}", f"{r.rows_per_s:,.0f}" if r.rows_per_s else "")
    out.print(table)
    targets = RichTable("target", "figure", "met")
    judged = verdicts(h, results)
    for target, figure, met in judged:
        targets.add_row(target, figure, "yes" if met else "NO")
    out.print(targets)
    if path is not None:
        path.write_text(json.dumps({**header, "results": [asdict(r) for r in results],
                                    "targets": [{"target": t, "figure": f, "met": m}
                                                for t, f, m in judged]},
                                   indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", default=os.environ.get(
        "RELAYFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to create the scratch database on")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the loaded database: SQLite's file in DIR; on PostgreSQL "
                             "relayflow_history_<runs> (replaced if it exists), its URL in DIR")
    parser.add_argument("--reuse", metavar="DIR|URL",
                        help="time a database loaded earlier with --keep DIR (or at a "
                             "PostgreSQL URL) instead of loading one")
    parser.add_argument("--prune", action="store_true",
                        help="also time `relayflow prune --older-than 60d` (deletes runs)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    if args.runs < 5_000:
        parser.error("--runs must be at least 5,000 (page 50 of the listing needs 2,500)")
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="relayflow-history-")))
        url, loaded = (reused(args.reuse) if args.reuse
                       else (stack.enter_context(fresh_database(args, workdir)), {}))
        relayflow = Relayflow(url, workdir)
        # A bench calls far more than a person; each call still counts in the database.
        relayflow.env["RELAYFLOW_RATE_LIMIT_API_PER_MINUTE"] = "1000000"
        if args.reuse:
            relayflow.command("migrate")  # the schema may have moved on since the load
            api_key = json.loads(relayflow.command("key", "create", SLUG, "--json"))["api_key"]
        else:
            loaded, api_key = build(relayflow, url, args.runs)
            if args.keep:
                (args.keep / "history.json").write_text(json.dumps({**loaded, "url": url}))
        folded = round(catch_up(url), 1)
        settle(url)
        header = {**describe(url), **loaded, "fold_seconds": folded}
        stack.callback(relayflow.stop)
        relayflow.start("serve", "serve", "--no-worker")
        relayflow.wait_healthy()
        try:
            results = measure(relayflow, api_key, url,
                              {"run": header["runs"], "attempt": header["attempts"]},
                              args.prune)
        except SystemExit as exc:
            raise SystemExit(f"{exc}\nthe end of relayflow serve's log:\n"
                             f"{relayflow.output('serve')[-3000:]}") from None
    report(header, results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
