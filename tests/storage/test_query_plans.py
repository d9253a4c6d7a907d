"""Every query run history and delivery ops send for a list, a count, a chart or a detail
reads runs, steps and attempts through an index, never by scanning the table.

The queries are those the product itself sends (captured from the API and the services
behind the pages, with their parameters), explained by the database. PostgreSQL plans by
statistics, so it gets a history of 100,000 runs first (made by the database itself, one
statement a table), analysed as autovacuum would; SQLite keeps no statistics (the product
never runs ANALYZE), so its plans do not depend on the rows and a small history shows them."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert, text

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services import delivery_ops, retention, run_history
from relayflow.services import workflow as workflow_service
from relayflow.services.run import RunQuery, build_filter
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, read_scope, session_scope
from relayflow.storage.ids import id_at
from relayflow.storage.models import DeliveryAttempt, FailureGroup, RunStep, Workflow, WorkflowRun
from relayflow.web.app import create_app
from tests.conftest import TEST_SECRET_KEY, WorkspaceHandle, make_workspace
from tests.support.flows import install
from tests.web.api.history import fresh_database

TABLES = ("workflow_runs", "run_steps", "delivery_attempts", "run_search")
NOW = datetime.now(UTC).replace(microsecond=0)
FLOW = {"key": "welcome", "trigger": {"type": "manual"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}
CAUSES = ("0f1e2d3c4b5a6978", "8796a5b4c3d2e1f0", "00ff11ee22dd33cc")


def _load(runtime: Runtime, workspace_id: uuid.UUID, runs: int) -> dict[str, Any]:
    """`runs` runs over 90 days, of two workflows and 1,000 contacts, each with two steps
    and every third with a delivery attempt; a few runs of one contact."""
    install(runtime, workspace_id, FLOW)
    install(runtime, workspace_id, {**FLOW, "key": "other"})
    with session_scope(runtime.sessions) as session:
        workflows = [workflow_service.get(session, workspace_id=workspace_id, key=key)
                     for key in ("welcome", "other")]
        contacts = [contact.id for contact in contact_service.resolve_many(
            session, workspace_id=workspace_id, now=NOW,
            specs=[{"email": f"c{i}@example.com"} for i in range(1000)])]
        session.execute(insert(FailureGroup), [
            {"workspace_id": workspace_id, "fingerprint": cause, "kind": kind,
             "workflow_id": workflows[0].id, "node_id": "done", "node_type": "END",
             "error_class": "StopError", "pattern": "declined", "sample_error": "declined",
             "created_at": NOW} for cause, kind in zip(CAUSES, ("run", "run", "delivery"),
                                                       strict=True)])
    engine = _engine(runtime)
    make = _made_in_postgres if engine.dialect.name == "postgresql" else _made_in_python
    run, attempt = make(runtime, workspace_id, workflows, contacts, runs)
    return {"run": run, "attempt": attempt, "contact": "c7@example.com", "cause": CAUSES[0],
            "bounce": CAUSES[2]}


STATUSES = ["COMPLETED"] * 16 + ["FAILED", "CANCELED", "RUNNING", "PENDING"]
SENT = ["SENT", "DELIVERED"] * 12 + ["BOUNCED", "FAILED"]


def _made_in_python(runtime: Runtime, workspace_id: uuid.UUID, workflows: list[Workflow],
                    contacts: list[uuid.UUID], runs: int) -> tuple[uuid.UUID, uuid.UUID]:
    """The history's rows made here and inserted (SQLite: a small history); the first
    run's id and its attempt's."""
    rng = random.Random(3)
    rows: dict[str, list[dict[str, Any]]] = {"runs": [], "steps": [], "attempts": []}
    for i in range(runs):
        workflow = workflows[i % 2]
        at = NOW - timedelta(seconds=rng.uniform(0, 90 * 86400))
        run_id, contact = id_at(at, rng), contacts[i % 1000]
        status = rng.choice(STATUSES)
        rows["runs"].append({
            "id": run_id, "workspace_id": workspace_id, "workflow_id": workflow.id,
            "version_id": workflow.current_version_id, "contact_id": contact,
            "trigger_type": "manual", "trigger_payload": {"order": i}, "duplicates_ignored": 0,
            "status": status, "created_at": at, "trigger_depth": 0,
            # failures of two causes, and now and then a retry of the run before
            "fingerprint": CAUSES[i % 2] if status == "FAILED" else None,
            "retry_of": rows["runs"][-1]["id"] if i % 97 == 1 else None})
        for seq in (0, 1):
            rows["steps"].append({
                "id": id_at(at, rng), "workspace_id": workspace_id, "run_id": run_id, "seq": seq,
                "node_id": "trigger" if seq == 0 else "done",
                "node_type": "TRIGGER" if seq == 0 else "END", "status": "COMPLETED",
                "started_at": at, "finished_at": at, "duration_ms": 0, "output": {}})
        if i % 3 == 0:
            rows["attempts"].append({
                "id": id_at(at, rng), "workspace_id": workspace_id, "run_id": run_id, "step_seq": 1,
                "workflow_id": workflow.id, "contact_id": contact, "channel": "email",
                "provider": "outbox", "recipient": f"c{i % 1000}@example.com",
                "status": (sent := rng.choice(SENT)),
                "fingerprint": CAUSES[2] if sent in ("BOUNCED", "FAILED") else None,
                "created_at": at})
    with session_scope(runtime.sessions) as session:
        for table, model in (("runs", WorkflowRun), ("steps", RunStep),
                             ("attempts", DeliveryAttempt)):
            for start in range(0, len(rows[table]), 5000):
                session.execute(insert(model), rows[table][start:start + 5000])
    return rows["runs"][0]["id"], rows["attempts"][0]["id"]


def _id_at(at: str) -> str:
    """SQL for a UUIDv7 made at `at`, as storage/ids.id_at makes one: its millisecond,
    the version, random bits around the variant."""
    return ("CAST(lpad(to_hex(CAST(floor(extract(epoch FROM " + at + ") * 1000) AS bigint)), "
            "12, '0') || '7' || substr(md5(random()::text), 1, 3) "
            "|| substr('89ab', 1 + CAST(floor(random() * 4) AS integer), 1) "
            "|| substr(md5(random()::text), 1, 15) AS uuid)")


def _one_of(values: list[str]) -> str:
    """SQL for one of `values`, each as likely."""
    return (f"(ARRAY[{', '.join(repr(v) for v in values)}])"
            f"[1 + CAST(floor(random() * {len(values)}) AS integer)]")


# The same history as _made_in_python, made by the database itself: each table in one
# INSERT ... SELECT (100,000 runs sent from here took 50 s, most of it in the trigger that
# _SEARCH stands in for).
_RUNS = f"""
    WITH made AS MATERIALIZED (
        SELECT i, at, {_id_at("at")} AS id, {_one_of(STATUSES)} AS status
        FROM (SELECT i, CAST(:now AS timestamptz) - random() * interval '90 days' AS at
              FROM generate_series(0, :runs - 1) AS i) AS timed)
    INSERT INTO workflow_runs (id, workspace_id, workflow_id, version_id, contact_id,
        trigger_type, trigger_payload, duplicates_ignored, status, created_at, trigger_depth,
        fingerprint, retry_of)
    SELECT id, :workspace, (CAST(:workflows AS uuid[]))[1 + i % 2],
        (CAST(:versions AS uuid[]))[1 + i % 2], (CAST(:contacts AS uuid[]))[1 + i % 1000],
        'manual', jsonb_build_object('order', i), 0, status, at, 0,
        CASE WHEN status = 'FAILED' THEN (CAST(:causes AS text[]))[1 + i % 2] END,
        CASE WHEN i % 97 = 1 THEN lag(id) OVER (ORDER BY i) END
    FROM made"""
_STEPS = f"""
    INSERT INTO run_steps (id, workspace_id, run_id, seq, node_id, node_type, status,
        started_at, finished_at, duration_ms, output)
    SELECT {_id_at("r.created_at")}, r.workspace_id, r.id, s.seq, s.node_id, s.node_type,
        'COMPLETED', r.created_at, r.created_at, 0, '{{}}'
    FROM workflow_runs AS r CROSS JOIN (VALUES (0, 'trigger', 'TRIGGER'), (1, 'done', 'END'))
        AS s (seq, node_id, node_type)
    WHERE r.workspace_id = :workspace"""
_ATTEMPTS = f"""
    INSERT INTO delivery_attempts (id, workspace_id, run_id, step_seq, workflow_id,
        contact_id, channel, provider, recipient, subject, body, status, attempt_number,
        fingerprint, created_at)
    SELECT {_id_at("created_at")}, workspace_id, id, 1, workflow_id, contact_id, 'email',
        'outbox', 'c' || i % 1000 || '@example.com', '', '', sent, 1,
        CASE WHEN sent IN ('BOUNCED', 'FAILED') THEN :bounce END, created_at
    FROM (SELECT r.*, CAST(r.trigger_payload ->> 'order' AS integer) AS i,
              {_one_of(SENT)} AS sent
          FROM workflow_runs AS r WHERE r.workspace_id = :workspace) AS r
    WHERE i % 3 = 0"""
# The runs' words, as migration 0024 writes them for the runs stored before it, instead of
# by the trigger that writes each new run's (an insert into run_search per run, 0.3 ms).
_SEARCH = """
    INSERT INTO run_search (run_id, words)
    SELECT id, relayflow_run_words(trigger_payload, captured, idempotency_key, error)
    FROM workflow_runs WHERE workspace_id = :workspace"""


def _made_in_postgres(runtime: Runtime, workspace_id: uuid.UUID, workflows: list[Workflow],
                      contacts: list[uuid.UUID], runs: int) -> tuple[uuid.UUID, uuid.UUID]:
    """The history made in the database, then analysed as autovacuum would; the first
    run's id and its attempt's. The runs' and attempts' count triggers fire as ever; the
    search trigger is off while the runs go in (in this transaction only), their words
    written after in one statement by the same function; the steps' foreign keys, true by
    construction (each step is made from its run), are not checked one by one."""
    engine = _engine(runtime)
    params = {"now": NOW, "runs": runs, "workspace": workspace_id,
              "workflows": [w.id for w in workflows],
              "versions": [w.current_version_id for w in workflows], "contacts": contacts,
              "causes": list(CAUSES[:2]), "bounce": CAUSES[2]}
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(0.3)"))  # the same history every time
        conn.exec_driver_sql("ALTER TABLE workflow_runs DISABLE TRIGGER run_search_insert")
        conn.execute(text(_RUNS), params)
        conn.exec_driver_sql("ALTER TABLE workflow_runs ENABLE TRIGGER run_search_insert")
        conn.execute(text(_SEARCH), params)
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(text(_STEPS), params)
        conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
        conn.execute(text(_ATTEMPTS), params)
        first = conn.execute(text(
            "SELECT r.id, a.id FROM workflow_runs AS r JOIN delivery_attempts AS a "
            "ON a.run_id = r.id WHERE r.workspace_id = :workspace "
            "AND r.trigger_payload = '{\"order\": 0}'"), params).one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return first[0], first[1]


def _engine(runtime: Runtime) -> Engine:
    engine: Engine = runtime.sessions.kw["bind"]
    return engine


@contextmanager
def _captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs the engine sends meanwhile that read runs, steps or attempts."""
    seen: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and any(
                re.search(rf"\b{table}\b", statement) for table in TABLES):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def _scans(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The tables of TABLES the database would read whole for this statement."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = [line for *_, line in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)]
            return [line for line in plan if _sqlite_scan(line, statement, plan)]
        found = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
        parents = _partitions(conn)
    plan = found if isinstance(found, list) else json.loads(found)
    scans: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        relation = node.get("Relation Name")
        if node.get("Node Type") == "Seq Scan" and parents.get(relation, relation) in TABLES:
            scans.append(f"Seq Scan on {relation}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return scans


def _partitions(conn: Any) -> dict[str, str]:
    """Each partition that holds rows, by name, and its table (storage/partitions.py): a
    scan of one is a scan of its table. An empty one (a month to come, the default) is
    read whole at no cost, and the planner knows it."""
    return {name: parent for name, parent, rows in conn.exec_driver_sql(
        "SELECT c.relname, p.relname, c.reltuples FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent")
        if rows > 0}


def _sqlite_scan(line: str, statement: str, plan: list[str]) -> bool:
    """A table read whole, or a workspace's rows all read through an index that narrows
    them by workspace alone (one workspace holds the whole history here): fine only for a
    page, where the index gives the order and the LIMIT stops the walk."""
    tables = "|".join(TABLES)
    if re.match(r"SCAN run_search VIRTUAL TABLE INDEX \d+:M", line):
        return False  # the FTS5 index asked what MATCHes: a lookup, not a read of it all
    if re.match(rf"SCAN ({tables})\b", line):
        return True
    whole_workspace = re.match(rf"SEARCH ({tables}) USING .*\(workspace_id=\?\)$", line)
    return bool(whole_workspace) and (
        not re.search(r"\bLIMIT\b", statement) or any("TEMP B-TREE" in p for p in plan))


@dataclass
class Planned:
    settings: Settings
    runtime: Runtime
    workspace: WorkspaceHandle
    history: dict[str, Any]


# The tests only read, so they share one loaded database (loading takes a while).
@pytest.fixture(scope="module")
def planned(_database_template: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planned]:
    directory = tmp_path_factory.mktemp("plans")
    settings = Settings(database_url=fresh_database(_database_template, directory),
                        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                        secret_key_file=str(directory / "secret.key"))
    engine = make_engine(settings.database_url)
    runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(TEST_SECRET_KEY))
    try:
        workspace = make_workspace(runtime, "plans")
        runs = 100_000 if engine.dialect.name == "postgresql" else 2_000
        yield Planned(settings, runtime, workspace, _load(runtime, workspace.id, runs))
    finally:
        engine.dispose()
        if engine.dialect.name == "postgresql":
            # Emptied in one TRUNCATE: the next test's db_url would delete the history row
            # by row (1.7 s).
            fresh_database(_database_template, directory)


RUN_FILTERS = [
    {}, {"status": "FAILED"}, {"status": "COMPLETED"}, {"workflow": "welcome"},
    {"contact": "CONTACT"},
    {"range": "24h"}, {"range": "30d"}, {"status": "FAILED,CANCELED", "workflow": "other",
                                         "range": "7d"},
    {"created_from": (NOW - timedelta(days=20, minutes=7)).isoformat(),
     "created_to": (NOW - timedelta(days=3, minutes=41)).isoformat()},
    # a search, alone and with the other filters (one run's order number)
    {"q": "1042"}, {"q": "order:1042"}, {"q": "1042", "status": "COMPLETED,FAILED"},
    {"q": "1042", "workflow": "welcome", "range": "30d"}, {"q": "1042", "contact": "CONTACT"},
]
DELIVERY_FILTERS = [
    {}, {"status": "BOUNCED"}, {"workflow": "welcome"}, {"contact": "CONTACT"},
    {"channel": "email", "range": "30d"},
]


def _params(filters: dict[str, str], history: dict[str, Any]) -> dict[str, str]:
    return {k: history["contact"] if v == "CONTACT" else v for k, v in filters.items()}


def test_lists_counts_and_details_of_the_api_read_through_indexes(planned: Planned) -> None:
    settings, runtime, workspace, history = (planned.settings, planned.runtime,
                                             planned.workspace, planned.history)
    engine = _engine(runtime)
    app = create_app(settings, runtime=runtime)
    with TestClient(app, headers=workspace.headers) as client, _captured(engine) as seen:
        for filters in RUN_FILTERS:
            params = _params(filters, history)
            first = client.get("/api/v1/runs", params=params)
            assert first.status_code == 200, first.text
            cursor = first.json()["next_cursor"]
            if cursor:
                assert client.get("/api/v1/runs", params={**params, "cursor": cursor}
                                  ).status_code == 200
        for filters in DELIVERY_FILTERS:
            response = client.get("/api/v1/deliveries", params=_params(filters, history))
            assert response.status_code == 200, response.text
        assert client.get(f"/api/v1/runs/{history['run']}").status_code == 200
        assert client.get(f"/api/v1/deliveries/{history['attempt']}").status_code == 200
    assert len(seen) > 20
    scans = {statement: found for statement, parameters in seen
             if (found := _scans(engine, statement, parameters))}
    assert not scans, "\n\n".join(f"{s}\n  -> {f}" for s, f in scans.items())


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Asia/Kolkata"])
def test_the_pages_counts_and_charts_read_through_indexes(planned: Planned, zone: str) -> None:
    runtime, workspace, history = planned.runtime, planned.workspace, planned.history
    engine = _engine(runtime)
    queries = [RunQuery(**_params(f, history)) for f in RUN_FILTERS
               if not {"created_from", "created_to"} & set(f)]
    with _captured(engine) as seen, read_scope(runtime.sessions) as session:
        for query in queries:
            run_history.history(session, workspace_id=workspace.id, query=query, now=NOW,
                                zone=ZoneInfo(zone))
        for filters in DELIVERY_FILTERS:
            delivery_ops.browse(session, workspace_id=workspace.id, now=NOW,
                                query=delivery_ops.DeliveryQuery(**_params(filters, history)))
        for query in queries:  # the CSV export's first pages
            run_filter = build_filter(session, workspace_id=workspace.id, query=query, now=NOW)
            list(islice(run_history.export_rows(runtime.sessions, run_filter=run_filter,
                                                page_size=500), 1000))
        for filters in DELIVERY_FILTERS:  # the delivery CSV export's first pages
            delivery_filter = delivery_ops.build_filter(
                session, workspace_id=workspace.id, now=NOW,
                query=delivery_ops.DeliveryQuery(**_params(filters, history)))
            list(islice(delivery_ops.export_rows(runtime.sessions, page_size=500,
                                                 delivery_filter=delivery_filter), 1000))
    assert len(seen) > 20
    scans = {statement: found for statement, parameters in seen
             if (found := _scans(engine, statement, parameters))}
    assert not scans, "\n\n".join(f"{s}\n  -> {f}" for s, f in scans.items())


@pytest.mark.parametrize(("path", "item"), [("/api/v1/runs/{}", "run"),
                                           ("/api/v1/deliveries/{}", "attempt")])
def test_a_detail_takes_two_queries(planned: Planned, path: str, item: str) -> None:
    """Whatever a run holds (steps, attempts, links) or an attempt (its run, its step, a
    chain of retries and resends), its detail is read in two queries, the API key's
    admission aside."""
    settings, runtime, workspace, history = (planned.settings, planned.runtime,
                                             planned.workspace, planned.history)
    engine = _engine(runtime)
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and not re.search(
                r"\b(api_keys|rate_counters)\b", statement):
            statements.append(statement)

    with TestClient(create_app(settings, runtime=runtime), headers=workspace.headers) as client:
        event.listen(engine, "before_cursor_execute", capture)
        try:
            detail = client.get(path.format(history[item]))
        finally:
            event.remove(engine, "before_cursor_execute", capture)
    assert detail.status_code == 200, detail.text
    assert len(statements) <= 2, "\n\n".join(statements)


def test_prune_walks_through_indexes(planned: Planned) -> None:
    """A dry run walks exactly as a prune does (the deletes go by primary key and by the
    steps' run index)."""
    engine = _engine(planned.runtime)
    with _captured(engine) as seen:
        pruned = retention.prune(planned.runtime, older_than="1d", dry_run=True)
    assert pruned.attempts > 0
    assert any("FROM workflow_runs" in statement for statement, _ in seen)
    scans = {statement: found for statement, parameters in seen
             if (found := _scans(engine, statement, parameters))}
    assert not scans, "\n\n".join(f"{s}\n  -> {f}" for s, f in scans.items())


def _indexes(engine: Engine, statement: str, parameters: Any) -> str:
    """The plan's text, which names every index it reads."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return "\n".join(line for *_, line in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
        return "\n".join(line for (line,) in conn.exec_driver_sql(
            "EXPLAIN " + statement, parameters))


def test_the_status_index_serves_a_list_of_failed_runs(planned: Planned) -> None:
    """The status index leaves COMPLETED runs out (WorkflowRun.status_in): a list of
    failed runs still reads it, on SQLite too, which uses a partial index only for a query
    that repeats its condition."""
    engine = _engine(planned.runtime)
    app = create_app(planned.settings, runtime=planned.runtime)
    with TestClient(app, headers=planned.workspace.headers) as client, \
            _captured(engine) as seen:
        assert client.get("/api/v1/runs", params={"status": "FAILED"}).status_code == 200
    lists = [(s, p) for s, p in seen if re.search(r"\bLIMIT\b", s) and "workflow_runs" in s]
    assert lists
    plan = _indexes(engine, *lists[0])
    assert re.search(r"ix_runs_ws_status_created|_workspace_id_status_created_at_id_idx",
                     plan), plan


def test_failures_and_their_runs_read_through_indexes(planned: Planned) -> None:
    """/failures groups the failures through the index that holds only them, and counts
    what retries resolved from the retries; a cause's runs and attempts are listed by it."""
    settings, runtime, workspace, history = (planned.settings, planned.runtime,
                                             planned.workspace, planned.history)
    engine = _engine(runtime)
    app = create_app(settings, runtime=runtime)
    with TestClient(app, headers=workspace.headers) as client, _captured(engine) as seen:
        for params in ({}, {"range": "30d"}, {"kind": "run", "workflow": "welcome"},
                       {"kind": "delivery", "range": "24h"}):
            response = client.get("/api/v1/failures", params=params)
            assert response.status_code == 200, response.text
        groups = client.get("/api/v1/failures", params={"range": "30d"}).json()["items"]
        assert {g["fingerprint"] for g in groups} == {history["cause"], CAUSES[1],
                                                      history["bounce"]}
        runs = client.get("/api/v1/runs", params={"fingerprint": history["cause"]})
        assert runs.status_code == 200
        assert {r["fingerprint"] for r in runs.json()["items"]} == {history["cause"]}
        attempts = client.get("/api/v1/deliveries", params={"fingerprint": history["bounce"]})
        assert attempts.status_code == 200
    assert len([s for s, _ in seen if "fingerprint" in s]) >= 8
    scans = {statement: found for statement, parameters in seen
             if (found := _scans(engine, statement, parameters))}
    assert not scans, "\n\n".join(f"{s}\n  -> {f}" for s, f in scans.items())
    # Not only no scan: the failures themselves are read only in the range's partial
    # hours at either end (its whole hours come from their rollup), and the resolved ones
    # from the retries.
    grouped = [(s, p) for s, p in seen if re.search(r"GROUP BY \S*fingerprint", s)]
    resolving = [(s, p) for s, p in seen
                 if re.search(r"ON \w+\.id = \w+\.(retry_of|resend_of)\b", s)]
    assert grouped
    assert resolving
    for statement, parameters in grouped:
        times = _times(parameters)
        assert len(times) == 2, (statement, parameters)
        assert max(times) - min(times) <= timedelta(hours=1), (statement, parameters)
    # On PostgreSQL each partition's index is named from its columns.
    for statement, parameters in resolving:
        plan = _indexes(engine, statement, parameters)
        assert re.search(r"ix_runs_retry_of|ix_deliveries_(retry|resend)_of"
                         r"|_(retry|resend)_of_idx", plan), (statement, plan)
    # First and last seen: the two ends of each cause's range in the same index.
    ends = [(s, p) for s, p in seen if "min(" in s and "fingerprint" in s]
    assert ends
    for statement, parameters in ends:
        plan = _indexes(engine, statement, parameters)
        assert re.search(r"ix_(runs|deliveries)_ws_fingerprint_created"
                         r"|_workspace_id_fingerprint_created", plan), (statement, plan)


def _times(parameters: Any) -> list[datetime]:
    """The times among a statement's parameters (SQLite's as ISO text)."""
    values = parameters.values() if isinstance(parameters, dict) else parameters
    found = []
    for value in values:
        if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\d[ T]\d\d:", value):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            found.append(value if value.tzinfo else value.replace(tzinfo=UTC))
    return found


def test_failures_count_whole_hours_from_their_rollup(planned: Planned) -> None:
    """A range's whole hours are counted from the failures' rollup (its plan is the
    planner's choice: here it is empty, every change still to be folded)."""
    engine = _engine(planned.runtime)
    app = create_app(planned.settings, runtime=planned.runtime)
    read: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"\b(run|delivery)_failure_counts\b", statement):
            read.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with TestClient(app, headers=planned.workspace.headers) as client:
            response = client.get("/api/v1/failures", params={"range": "30d"})
            assert response.status_code == 200, response.text
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert {t for s, _ in read for t in re.findall(r"\b\w+_failure_counts\b", s)} == {
        "run_failure_counts", "delivery_failure_counts"}



def test_a_scan_is_seen(planned: Planned) -> None:
    """The check itself: a query that can only scan is reported."""
    engine = _engine(planned.runtime)
    with _captured(engine) as seen, engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM workflow_runs WHERE error IS NULL"))
    assert _scans(engine, *seen[0])
