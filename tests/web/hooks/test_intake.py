"""Group commit: webhook requests that arrive together are written in one transaction, and
each still gets the answer it alone would have got."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from relayflow.errors import Conflict, MalformedInput, NotFound, TooManyRequests
from relayflow.services.runtime import Runtime
from relayflow.services.webhook import Accepted, Inbound
from relayflow.storage.db import session_scope
from relayflow.storage.models import RateCounter
from relayflow.web.intake import Intake
from tests.conftest import WorkspaceHandle
from tests.support.flows import set_secret
from tests.web.hooks.conftest import (
    SECRET_NAME,
    SECRET_VALUE,
    hook_definition,
    install_hook,
    run_count,
    signature,
)

NOW = datetime(2030, 1, 1, 12, 0, 15, tzinfo=UTC)


@pytest.fixture(autouse=True)
def pinned_clock(runtime: Runtime) -> None:
    runtime.clock = lambda: NOW


@pytest.fixture
def commits(runtime: Runtime) -> Iterator[list[int]]:
    """One entry per transaction committed through the runtime's engine."""
    seen: list[int] = []
    engine: Engine = runtime.sessions.kw["bind"]

    def count(_conn: Any) -> None:
        seen.append(1)

    event.listen(engine, "commit", count)
    yield seen
    event.remove(engine, "commit", count)


@pytest.fixture
def savepoints(runtime: Runtime) -> Iterator[list[str]]:
    """The SAVEPOINT statements sent through the runtime's engine."""
    seen: list[str] = []
    engine: Engine = runtime.sessions.kw["bind"]

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SAVEPOINT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def _together(intake: Intake, requests: list[Inbound]) -> list[Accepted | BaseException]:
    """Hand every request to the intake at the same moment, as concurrent handlers would."""

    async def all_of() -> list[Accepted | BaseException]:
        return await asyncio.gather(*(intake.receive(r) for r in requests),
                                    return_exceptions=True)

    return asyncio.run(all_of())


def _token(path: str) -> str:
    return path.rsplit("/", 1)[1]


def _order(i: int) -> bytes:
    return json.dumps({"kind": "order", "n": i}).encode()


def test_requests_arriving_together_share_one_commit_and_keep_their_own_answers(
    runtime: Runtime, client: TestClient, commits: list[int],
) -> None:
    token = _token(install_hook(client, hook_definition()))
    intake = Intake(runtime, per_minute=0, phone_region=None)
    requests = [Inbound(token=token, body=_order(i), idempotency_key=f"k{i}") for i in range(8)]
    requests.insert(3, Inbound(token="no-such-token", body=_order(99)))
    requests.insert(5, Inbound(token=token, body=b"{not json"))
    requests.append(Inbound(token=token, body=_order(0), idempotency_key="k0"))  # a repeat
    commits.clear()

    answers = _together(intake, requests)

    assert len(commits) == 1
    assert isinstance(answers[3], NotFound)
    assert isinstance(answers[5], MalformedInput)
    accepted = [a for a in answers if isinstance(a, Accepted)]
    assert len(accepted) == 9
    assert [a.enrolled.duplicate for a in accepted] == [False] * 8 + [True]
    assert accepted[-1].enrolled.run.id == accepted[0].enrolled.run.id
    assert run_count(runtime) == 8


def test_a_batch_whose_requests_all_succeed_is_written_without_savepoints(
    runtime: Runtime, client: TestClient, commits: list[int], savepoints: list[str],
) -> None:
    """The common case, a steady flow of good requests, costs no savepoint per request:
    the batch is written all or nothing, once."""
    token = _token(install_hook(client, hook_definition(
        contact={"email": "{{ event.email }}"})))
    intake = Intake(runtime, per_minute=0, phone_region=None)
    requests = [Inbound(token=token, idempotency_key=f"k{i}", body=json.dumps(
        {"kind": "order", "email": f"c{i % 4}@example.com"}).encode()) for i in range(8)]
    commits.clear()

    answers = _together(intake, requests)

    assert all(isinstance(a, Accepted) for a in answers)
    assert len(commits) == 1
    assert savepoints == []
    assert run_count(runtime) == 8
    contacts = {a.enrolled.run.contact_id for a in answers if isinstance(a, Accepted)}
    assert len(contacts) == 4  # a contact new in the batch is found by its later requests


@pytest.fixture
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every statement sent through the runtime's engine (an executemany counts once)."""
    seen: list[str] = []
    engine: Engine = runtime.sessions.kw["bind"]

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_a_batch_costs_the_same_statements_whatever_its_size(
    runtime: Runtime, client: TestClient, statements: list[str],
) -> None:
    """Contacts are looked up and created, idempotency keys looked up, and runs, steps and
    jobs inserted for the whole batch at once: 12 new contacts cost what 3 do."""
    token = _token(install_hook(client, hook_definition(
        contact={"email": "{{ event.email }}"})))
    intake = Intake(runtime, per_minute=0, phone_region=None)
    counts = []
    for size, first in ((3, 0), (12, 100)):
        requests = [Inbound(token=token, idempotency_key=f"k{i}", body=json.dumps(
            {"kind": "order", "email": f"c{i}@example.com"}).encode())
            for i in range(first, first + size)]
        statements.clear()
        answers = _together(intake, requests)
        assert all(isinstance(a, Accepted) for a in answers)
        counts.append(len(statements))
    assert counts[0] == counts[1]
    assert run_count(runtime) == 15


def test_one_failing_request_has_the_batch_written_again_request_by_request(
    runtime: Runtime, client: TestClient, commits: list[int], savepoints: list[str],
) -> None:
    token = _token(install_hook(client, hook_definition()))
    intake = Intake(runtime, per_minute=0, phone_region=None)
    requests = [Inbound(token=token, body=_order(i)) for i in range(4)]
    requests.insert(2, Inbound(token=token, body=b"[]"))
    commits.clear()

    answers = _together(intake, requests)

    assert [type(a).__name__ for a in answers] == ["Accepted"] * 2 + ["InvalidInput"] + [
        "Accepted"] * 2
    assert len(commits) == 1  # the all-or-nothing attempt was rolled back, not committed
    assert len(savepoints) >= 5  # then at least one per request
    assert run_count(runtime) == 4  # each good request opened its run once


def test_a_request_alone_is_written_at_once(
    runtime: Runtime, client: TestClient, commits: list[int],
) -> None:
    token = _token(install_hook(client, hook_definition()))
    intake = Intake(runtime, per_minute=0, phone_region=None)
    for i in range(3):
        commits.clear()
        answer = _together(intake, [Inbound(token=token, body=_order(i))])[0]
        assert isinstance(answer, Accepted)
        assert len(commits) == 1
        assert run_count(runtime) == i + 1


def test_refused_requests_in_a_batch_stay_counted_and_open_nothing(
    runtime: Runtime, client: TestClient,
) -> None:
    token = _token(install_hook(client, hook_definition()))
    intake = Intake(runtime, per_minute=5, phone_region=None)

    answers = _together(intake, [Inbound(token=token, body=_order(i)) for i in range(8)])

    assert [type(a).__name__ for a in answers] == ["Accepted"] * 5 + ["TooManyRequests"] * 3
    assert all(isinstance(a, TooManyRequests) for a in answers[5:])
    assert run_count(runtime) == 5
    with session_scope(runtime.sessions) as session:
        counted = session.scalar(select(RateCounter.count).where(
            RateCounter.key.startswith("hook:")))
    assert counted == 8


def test_a_failing_request_undoes_only_its_own_writes(
    runtime: Runtime, client: TestClient, workspace: WorkspaceHandle,
) -> None:
    """A signed request sent again under another key is refused (409) after its replay was
    noted: that note is undone with it, and the batch's other requests are kept."""
    set_secret(runtime, workspace.id, SECRET_NAME, SECRET_VALUE)
    token = _token(install_hook(client, hook_definition(signing_secret=SECRET_NAME)))
    intake = Intake(runtime, per_minute=0, phone_region=None)
    body = _order(1)
    signed = signature(body, t=int(NOW.timestamp()))

    answers = _together(intake, [
        Inbound(token=token, body=body, signature=signed, idempotency_key="first"),
        Inbound(token=token, body=body, signature=signed, idempotency_key="second"),
        Inbound(token=token, body=_order(2), signature=signature(
            _order(2), t=int(NOW.timestamp()))),
    ])

    assert isinstance(answers[0], Accepted)
    assert isinstance(answers[2], Accepted)
    assert isinstance(answers[1], Conflict)
    assert run_count(runtime) == 2
    with session_scope(runtime.sessions) as session:
        replays = sorted(session.scalars(select(RateCounter.count).where(
            RateCounter.key.startswith("sig:"))))
    assert replays == [1, 1]  # the refused request's note was rolled back with it


def test_a_failed_commit_is_every_requests_answer(
    runtime: Runtime, client: TestClient,
) -> None:
    token = _token(install_hook(client, hook_definition()))
    intake = Intake(runtime, per_minute=0, phone_region=None)
    engine: Engine = runtime.sessions.kw["bind"]
    tried: list[int] = []

    def refuse(_conn: Any) -> None:
        tried.append(1)
        raise RuntimeError("the disk is full")

    event.listen(engine, "commit", refuse)
    try:
        answers = _together(intake, [Inbound(token=token, body=_order(i)) for i in range(3)])
    finally:
        event.remove(engine, "commit", refuse)

    assert all(isinstance(a, RuntimeError) for a in answers)
    # Not written again: a commit that failed may still have happened (a connection lost
    # during COMMIT), and a second write would open the runs twice.
    assert len(tried) == 1
    assert run_count(runtime) == 0
    assert isinstance(_together(intake, [Inbound(token=token, body=_order(9))])[0], Accepted)


class _HeldFirst(Intake):
    """An intake whose first batch waits (up to `hold` seconds) for a second batch to start
    being written before it is written itself."""

    def __init__(self, runtime: Runtime, *, in_flight: int, hold: float) -> None:
        super().__init__(runtime, per_minute=0, phone_region=None, in_flight=in_flight)
        self.batches: list[int] = []
        self.second = threading.Event()
        self.overlapped = False
        self._hold = hold

    def _write(self, requests: list[Inbound]) -> list[Accepted | Exception]:
        self.batches.append(len(requests))
        if len(self.batches) == 1:
            self.overlapped = self.second.wait(self._hold)
        else:
            self.second.set()
        return super()._write(requests)


@pytest.mark.parametrize(("in_flight", "overlaps"), [(1, False), (2, True)])
def test_a_second_batch_is_written_beside_the_first_only_if_allowed(
    runtime: Runtime, client: TestClient, in_flight: int, overlaps: bool,
) -> None:
    """PostgreSQL's intake writes two batches at once (their commits share the log's flush);
    SQLite's one at a time. Either way each request gets its own run."""
    token = _token(install_hook(client, hook_definition()))
    intake = _HeldFirst(runtime, in_flight=in_flight, hold=10 if overlaps else 0.5)

    async def scenario() -> list[Accepted]:
        first = asyncio.create_task(intake.receive(Inbound(token=token, body=_order(1))))
        while not intake.batches:  # the first batch is in its thread, being held
            await asyncio.sleep(0.005)
        second = asyncio.create_task(intake.receive(Inbound(token=token, body=_order(2))))
        return list(await asyncio.wait_for(asyncio.gather(first, second), 30))

    answers = asyncio.run(scenario())
    assert intake.overlapped is overlaps
    assert intake.batches == [1, 1]
    assert len({a.enrolled.run.id for a in answers}) == 2
    assert run_count(runtime) == 2
