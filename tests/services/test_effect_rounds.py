"""A batch's effects on the worker's pool: each commit carries one round's results and the
next round's "performing now" marks (services/walk.py), against a real SMTP server.

The message's attempt row and its mark are written by the same transaction; the mark must
land (an UPDATE before the row's INSERT would change nothing, and a crash during the send
would then send the message again instead of recording "outcome unknown")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from relayflow.services import frequency as frequency_service
from relayflow.services import walk
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.models import DeliveryAttempt, RunStep
from tests.support.flows import call_then_mail, install, start, statuses

RUNS = 6


def _start(runtime, workspace, http_server) -> None:
    install(runtime, workspace.id, call_then_mail(f"{http_server.url}/json"))
    for n in range(RUNS):
        start(runtime, workspace.id, "pair", email=f"c{n}@example.com")


def _advance(runtime) -> int:
    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        return walk.advance(runtime, worker="test", limit=RUNS, lease_seconds=30, pool=pool)


def test_a_pooled_batch_marks_every_message_before_sending_it(runtime, workspace, smtp_sink,
                                                              http_server):
    _start(runtime, workspace, http_server)

    claimed = _advance(runtime)

    assert claimed == RUNS
    assert statuses(runtime) == {"COMPLETED": RUNS}  # one iteration: both rounds
    assert len(smtp_sink.messages) == RUNS
    with session_scope(runtime.sessions) as session:
        attempts = list(session.scalars(select(DeliveryAttempt)))
    assert [a.status for a in attempts] == ["SENT"] * RUNS
    assert all(a.send_started_at is not None for a in attempts)


def test_a_capped_message_takes_its_place_only_once_its_step_is_committed(
    runtime, workspace, smtp_sink, http_server, monkeypatch
):
    """The place is keyed by the step: taken before the step is committed, a crash would
    leave it behind, and the recovered run would take a second one under a new step."""
    with session_scope(runtime.sessions) as session:
        frequency_service.put(session, workspace_id=workspace.id, caps={"email": 5},
                              now=runtime.clock())
    _start(runtime, workspace, http_server)
    reserve = frequency_service.reserve
    keys_committed: list[bool] = []

    def reserve_after_checking(runtime_, **kwargs):
        with read_scope(runtime_.sessions) as session:
            keys_committed.append(session.scalar(
                select(RunStep.seq).where(RunStep.id == kwargs["key"])) is not None)
        return reserve(runtime_, **kwargs)

    monkeypatch.setattr(frequency_service, "reserve", reserve_after_checking)

    assert _advance(runtime) == RUNS

    assert keys_committed == [True] * RUNS
    assert statuses(runtime) == {"COMPLETED": RUNS}
    assert len(smtp_sink.messages) == RUNS


def test_a_run_that_ends_before_the_others_is_left_out_of_their_commits(
        runtime, workspace, smtp_sink, http_server, caplog):
    """Its job is gone once its end is committed: fencing it again would read as a lost
    lease, and warn of progress discarded where none was."""
    _start(runtime, workspace, http_server)
    install(runtime, workspace.id, {"key": "quick", "trigger": {"type": "manual"},
                                    "start": "done", "nodes": {"done": {"type": "END"}}})
    start(runtime, workspace.id, "quick", count=2)

    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        claimed = walk.advance(runtime, worker="test", limit=RUNS + 2, lease_seconds=30,
                               pool=pool)

    assert claimed == RUNS + 2
    assert statuses(runtime) == {"COMPLETED": RUNS + 2}
    assert "lease lost" not in caplog.text
