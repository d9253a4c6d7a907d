"""A run history with known answers, made through the real API and worker.

Nine runs in workspace `acme` (and one in `globex` that must never show), each created at a
controlled time by setting `runtime.clock`, each brought to its status the way users get
there: END, STOP_ERROR, parked at a WAIT, canceled while parked or pending, still pending.

    name  workflow    contact          created      status
    r1    onboarding  ada@example.com  NOW - 40d    COMPLETED
    r2    rejecter    bob@example.com  NOW - 20d    FAILED
    r3    hold        ada@example.com  NOW - 10d    RUNNING (parked at hold_90d)
    r4    onboarding  +14155550123     NOW - 3d     COMPLETED
    r5    hold        bob@example.com  NOW - 2d     CANCELED (while parked)
    r6    rejecter    ada@example.com  NOW - 5h     FAILED
    r7    onboarding  bob@example.com  NOW - 1h     PENDING
    r8    hold        +14155550123     NOW - 30min  CANCELED (while pending)
    r9    rejecter    (none)           NOW - 10min  FAILED

carol@example.com is a contact with no runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from relayflow.config import Settings
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, normalize_url
from relayflow.web.app import create_app
from tests.conftest import PG_URL, TABLES, TEST_SECRET_KEY, WorkspaceHandle, make_workspace
from tests.support.worker import drain
from tests.web.api.definitions import create, rejecting

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ADA, BOB, PHONE = "ada@example.com", "bob@example.com", "+14155550123"
NEWEST_FIRST = ["r9", "r8", "r7", "r6", "r5", "r4", "r3", "r2", "r1"]


def holding(key: str = "hold") -> dict[str, Any]:
    """Parks for 90 days: longer than the whole history, so it never wakes during a test."""
    return {
        "key": key,
        "trigger": {"type": "manual"},
        "start": "hold_90d",
        "nodes": {"hold_90d": {"type": "WAIT", "duration": "90d", "next": "done"},
                  "done": {"type": "END"}},
    }


def greeting(key: str = "onboarding") -> dict[str, Any]:
    """Branches on the plan and ends: no message, so phone-only contacts complete too."""
    return {
        "key": key,
        "trigger": {"type": "manual"},
        "start": "check",
        "nodes": {"check": {"type": "CONDITION", "when": "(event.plan | default('')) == 'pro'",
                            "then": "done", "else": "done"},
                  "done": {"type": "END"}},
    }


def freeze(runtime: Runtime, at: datetime) -> None:
    runtime.clock = lambda: at


@dataclass
class History:
    ids: dict[str, str] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)
    other_run: str = ""

    def names(self, run_ids: list[str]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id.get(i, f"<unknown {i}>") for i in run_ids]


def _start(client: TestClient, key: str, contact: dict[str, str] | None,
           event: dict[str, Any] | None = None) -> str:
    response = client.post(f"/api/v1/workflows/{key}/runs",
                           json={"contact": contact, "event": event or {}})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["id"]
    return run_id


def seed(client: TestClient, other_client: TestClient, runtime: Runtime) -> History:
    """Build the history above; leaves the clock frozen at NOW."""
    history = History()
    freeze(runtime, NOW - timedelta(days=60))
    for definition in (greeting(), rejecting(), holding()):
        create(client, definition)
        create(other_client, definition)
    client.post("/api/v1/contacts", json={"email": "carol@example.com"})

    def at(name: str, ago: timedelta, key: str, contact: dict[str, str] | None,
           then: Callable[[str], None] | None = None, run: bool = True) -> None:
        moment = NOW - ago
        freeze(runtime, moment)
        run_id = _start(client, key, contact, {"reason": name})
        history.ids[name], history.created[name] = run_id, moment
        if then is not None:
            then(run_id)
        if run:
            drain(runtime)

    def cancel(run_id: str) -> None:
        assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200

    def park_then_cancel(run_id: str) -> None:
        drain(runtime)
        cancel(run_id)

    at("r1", timedelta(days=40), "onboarding", {"email": ADA})
    at("r2", timedelta(days=20), "rejecter", {"email": BOB})
    at("r3", timedelta(days=10), "hold", {"email": ADA})
    at("r4", timedelta(days=3), "onboarding", {"phone": "+1 (415) 555-0123"})
    at("r5", timedelta(days=2), "hold", {"email": BOB}, then=park_then_cancel)
    at("r6", timedelta(hours=5), "rejecter", {"email": ADA})
    at("r8", timedelta(minutes=30), "hold", {"phone": PHONE}, then=cancel, run=False)
    at("r9", timedelta(minutes=10), "rejecter", None)
    # Last, so no drain above picks it up: it stays PENDING.
    at("r7", timedelta(hours=1), "onboarding", {"email": BOB}, run=False)
    freeze(runtime, NOW - timedelta(hours=1))
    history.other_run = _start(other_client, "onboarding", {"email": ADA})
    freeze(runtime, NOW)
    return history


# --- one seeded database shared by a module's read-only tests ---------------------------


@dataclass
class World:
    settings: Settings
    runtime: Runtime
    app: FastAPI
    client: TestClient
    other_client: TestClient
    workspace: WorkspaceHandle
    history: History


def fresh_database(template: str, directory: Path) -> str:
    """What tests/conftest.py's `db_url` does, for fixtures wider than one test."""
    if not PG_URL:
        target = directory / "relayflow.db"
        shutil.copy(template, target)
        return f"sqlite:///{target}"
    engine = create_engine(normalize_url(template))
    tables = ", ".join(TABLES)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    engine.dispose()
    return template


@contextmanager
def seeded_world(template: str, directory: Path) -> Iterator[World]:
    settings = Settings(database_url=fresh_database(template, directory),
                        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                        secret_key_file=str(directory / "secret.key"))
    engine = make_engine(settings.database_url)
    runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(TEST_SECRET_KEY))
    workspace, other = make_workspace(runtime, "acme"), make_workspace(runtime, "globex")
    app = create_app(settings, runtime=runtime)
    try:
        with TestClient(app, headers=workspace.headers) as client, \
                TestClient(app, headers=other.headers) as other_client:
            history = seed(client, other_client, runtime)
            yield World(settings, runtime, app, client, other_client, workspace, history)
    finally:
        engine.dispose()
