"""Bulk retry and cancel through the real services (services/bulk.py)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from relayflow.errors import Conflict, InvalidInput
from relayflow.services import bulk
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, BulkItem, BulkOperation, WorkflowRun
from tests.support.flows import install, run_of, start
from tests.support.worker import drain


def _stopper() -> dict:
    return {"key": "stopper", "trigger": {"type": "manual"}, "start": "first", "nodes": {
        "first": {"type": "STOP_ERROR", "message": "no plan for order {{ event.order }}"}}}


def _fixed() -> dict:
    return {"key": "stopper", "trigger": {"type": "manual"}, "start": "mail", "nodes": {
        "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi", "body": "Hi",
                 "next": "call"},
        "call": {"type": "INTEGRATION", "request": {"method": "GET",
                                                    "url": "http://127.0.0.1:9/x"},
                 "next": "done", "on_error": "done"},
        "done": {"type": "END"}}}


def _waiter() -> dict:
    return {"key": "waiter", "trigger": {"type": "manual"}, "start": "pause", "nodes": {
        "pause": {"type": "WAIT", "duration": "3d", "next": "done"}, "done": {"type": "END"}}}


def _failed(runtime, workspace, n: int) -> list:
    install(runtime, workspace.id, _stopper())
    ids = [start(runtime, workspace.id, "stopper", email=f"c{i}@example.com",
                 event={"order": i})[0] for i in range(n)]
    drain(runtime)
    return ids


def _spec(action: str = "retry", **filter_) -> bulk.Spec:
    return bulk.spec(action=action, filter=filter_ or {"status": "FAILED"})


def _create(runtime, workspace, request: bulk.Spec, *, rate: float = 1000.0) -> BulkOperation:
    with session_scope(runtime.sessions) as session:
        operation = bulk.create(session, workspace_id=workspace.id, request=request,
                                actor="olga@acme.test", now=runtime.clock(), rate=rate)
        session.expunge(operation)
    return operation


def _reload(runtime, operation_id) -> BulkOperation:
    with session_scope(runtime.sessions) as session:
        found = session.get(BulkOperation, operation_id)
        session.expunge(found)
    return found


def _finish(runtime, *, worker: str = "w1", limit: int = 200) -> int:
    acted = 0
    for _ in range(limit):
        runtime.clock = (lambda at: lambda: at)(runtime.clock() + timedelta(seconds=1))
        n = bulk.advance(runtime, worker=worker)
        acted += n
        if n == 0 and bulk.advance(runtime, worker=worker) == 0:
            with session_scope(runtime.sessions) as session:
                open_ = session.scalar(select(func.count()).select_from(BulkOperation).where(
                    BulkOperation.status == "RUNNING"))
            if not open_:
                return acted
    raise AssertionError("the operation did not finish")


def _retries(runtime) -> Counter:
    with session_scope(runtime.sessions) as session:
        return Counter(session.scalars(select(WorkflowRun.retry_of).where(
            WorkflowRun.retry_of.is_not(None))))


class TestSpec:
    @pytest.mark.parametrize(("kwargs", "message"), [
        ({"action": "delete", "filter": {"status": "FAILED"}}, "action must be one of"),
        ({"action": "retry", "filter": {}}, "give at least one filter"),
        ({"action": "retry", "filter": None}, "filter must be an object"),
        ({"action": "retry", "filter": {"colour": "red"}}, "unknown filter field 'colour'"),
        ({"action": "retry", "filter": {"ids": "abc"}}, "filter.ids must be a list"),
        ({"action": "retry", "filter": {"ids": ["nope"]}}, "'nope' is not a run id"),
        ({"action": "retry", "filter": {"from": "yesterday"}}, "not an ISO 8601"),
        ({"action": "retry", "filter": {"q": 'city:"New'}}, "not closed"),
        ({"action": "retry", "filter": {"status": 3}}, "filter.status must be text"),
        ({"action": "retry", "filter": {"status": "FAILED"}, "version": "v2"},
         "version must be one of original, current"),
        ({"action": "cancel", "filter": {"status": "RUNNING"}, "version": "current"},
         "version is for retries"),
        ({"action": "cancel", "filter": {"status": "RUNNING"}, "reason": "x" * 2001},
         "at most 2000 characters"),
    ])
    def test_bad_requests_are_clear_errors(self, kwargs, message):
        with pytest.raises(InvalidInput, match=message):
            bulk.spec(**kwargs)

    def test_filters_the_run_list_refuses_are_refused_too(self, runtime, workspace):
        with session_scope(runtime.sessions) as session, pytest.raises(
                InvalidInput, match="16 hexadecimal digits"):
            bulk.preview(session, workspace_id=workspace.id, now=runtime.clock(),
                         request=_spec(fingerprint="zz"))


class TestPreview:
    def test_count_sample_skips_and_the_effects_of_the_current_version(self, runtime,
                                                                       workspace):
        ids = _failed(runtime, workspace, 25)
        install(runtime, workspace.id, _fixed())
        request = bulk.spec(action="retry", filter={"status": "FAILED"}, version="current")
        with session_scope(runtime.sessions) as session:
            seen = bulk.preview(session, workspace_id=workspace.id, request=request,
                                now=runtime.clock())
        assert seen.count == 25
        assert len(seen.sample) == bulk.SAMPLE
        assert {row.run.id for row in seen.sample} <= set(ids)
        assert seen.skipped == {}
        assert (seen.effects.messages, seen.effects.integrations) == (25, 25)
        original = bulk.spec(action="retry", filter={"status": "FAILED"})
        with session_scope(runtime.sessions) as session:
            again = bulk.preview(session, workspace_id=workspace.id, request=original,
                                 now=runtime.clock())
        assert (again.effects.messages, again.effects.integrations) == (0, 0)

    def test_nothing_is_written(self, runtime, workspace):
        _failed(runtime, workspace, 2)
        with session_scope(runtime.sessions) as session:
            bulk.preview(session, workspace_id=workspace.id, request=_spec(),
                         now=runtime.clock())
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(func.count()).select_from(BulkOperation)) == 0

    def test_cancel_skips_what_has_finished(self, runtime, workspace):
        _failed(runtime, workspace, 2)
        install(runtime, workspace.id, _waiter())
        start(runtime, workspace.id, "waiter", email="w@example.com")
        drain(runtime)
        request = bulk.spec(action="cancel", filter={"range": "24h"})
        with session_scope(runtime.sessions) as session:
            seen = bulk.preview(session, workspace_id=workspace.id, request=request,
                                now=runtime.clock())
        assert (seen.count, seen.skipped, seen.acting) == (3, {"already FAILED": 2}, 1)

    def test_path_effects_take_the_longest_path_and_see_loops(self):
        definition = {"key": "k", "start": "a", "nodes": {
            "a": {"type": "CONDITION", "when": "true", "then": "m1", "else": "m3"},
            "m1": {"type": "SEND_MESSAGE", "channel": "email", "body": "x", "next": "m2"},
            "m2": {"type": "SEND_MESSAGE", "channel": "email", "body": "x", "next": "end"},
            "m3": {"type": "SEND_MESSAGE", "channel": "email", "body": "x", "next": "w"},
            "w": {"type": "WAIT", "duration": "1d", "next": "a"},
            "end": {"type": "END"}}}
        found = bulk.path_effects(definition)
        assert (found.messages, found.integrations, found.loops) == (2, 0, True)


class TestActing:
    def test_each_failed_run_is_retried_once_and_the_operation_finishes(self, runtime,
                                                                        workspace):
        ids = _failed(runtime, workspace, 12)
        operation = _create(runtime, workspace, _spec(fingerprint=run_of(
            runtime, ids[0]).fingerprint, status="FAILED"))
        assert operation.total == 12
        assert _finish(runtime) == 12
        done = _reload(runtime, operation.id)
        assert (done.status, done.done, done.skipped, done.failed) == ("COMPLETED", 12, 0, 0)
        assert done.finished_at is not None
        assert _retries(runtime) == Counter(dict.fromkeys(ids, 1))
        with session_scope(runtime.sessions) as session:
            items = session.scalars(select(BulkItem)).all()
            keys = set(session.scalars(select(WorkflowRun.idempotency_key).where(
                WorkflowRun.retry_of.is_not(None))))
            actions = [e.action for e in session.scalars(select(AuditEvent).order_by(
                AuditEvent.at))]
        assert {i.state for i in items} == {"DONE"}
        assert {i.result_run_id for i in items} == set().union(*[
            {r} for r in _retry_ids(runtime)])
        assert keys == {f"bulk:{operation.id}:{run_id}" for run_id in ids}
        assert actions.count("bulk.create") == 1
        assert actions.count("bulk.finish") == 1
        assert "run.retry" not in actions

    def test_a_second_operation_skips_what_the_first_fixed(self, runtime, workspace):
        ids = _failed(runtime, workspace, 3)
        install(runtime, workspace.id, {"key": "stopper", "trigger": {"type": "manual"},
                                        "start": "e", "nodes": {"e": {"type": "END"}}})
        first = _create(runtime, workspace, bulk.spec(
            action="retry", filter={"ids": [str(ids[0])]}, version="current"))
        _finish(runtime)
        from tests.support.worker import drain as walk
        walk(runtime)
        second = _create(runtime, workspace, _spec(ids=[str(i) for i in ids]))
        _finish(runtime)
        done = _reload(runtime, second.id)
        assert (done.done, done.skipped) == (2, 1)
        with session_scope(runtime.sessions) as session:
            [skip] = session.scalars(select(BulkItem).where(
                BulkItem.operation_id == second.id, BulkItem.state == "SKIPPED")).all()
        assert (skip.run_id, skip.detail) == (ids[0], "already retried successfully")
        assert _reload(runtime, first.id).status == "COMPLETED"

    def test_bulk_cancel_records_who_and_why(self, runtime, workspace):
        install(runtime, workspace.id, _waiter())
        ids = start(runtime, workspace.id, "waiter", email="w@example.com", count=3)
        drain(runtime)
        operation = _create(runtime, workspace, bulk.spec(
            action="cancel", filter={"workflow": "waiter"}, reason="wrong audience"))
        _finish(runtime)
        for run_id in ids:
            run = run_of(runtime, run_id)
            assert run.status == "CANCELED"
            assert run.canceled_by == f"bulk:{operation.id}"
            assert run.cancel_reason == "wrong audience"

    def test_it_keeps_its_pace(self, runtime, workspace):
        _failed(runtime, workspace, 30)
        base = runtime.clock()
        runtime.clock = lambda: base  # no time has passed: one run, the first
        operation = _create(runtime, workspace, _spec(), rate=5.0)
        assert bulk.advance(runtime, worker="w1") == 1
        assert bulk.advance(runtime, worker="w1") == 0
        runtime.clock = lambda: base + timedelta(seconds=2)  # 2 s at 5 a second
        assert bulk.advance(runtime, worker="w1") == 10
        assert _reload(runtime, operation.id).done == 11

    def test_one_worker_at_a_time_until_its_lease_runs_out(self, runtime, workspace):
        _failed(runtime, workspace, 30)
        base = runtime.clock()
        _create(runtime, workspace, _spec(), rate=1.0)
        runtime.clock = lambda: base + timedelta(seconds=3)
        assert bulk.advance(runtime, worker="w1") > 0
        runtime.clock = lambda: base + timedelta(seconds=10)
        assert bulk.advance(runtime, worker="w2") == 0  # w1's lease holds
        runtime.clock = lambda: base + timedelta(seconds=10 + bulk.LEASE_SECONDS)
        assert bulk.advance(runtime, worker="w2") > 0

    def test_an_item_another_worker_took_is_not_acted_on_again(self, runtime, workspace):
        ids = _failed(runtime, workspace, 2)
        operation = _create(runtime, workspace, _spec())
        with session_scope(runtime.sessions) as session:  # as if another worker had acted
            session.get(BulkItem, (operation.id, ids[0])).state = "DONE"
        _finish(runtime)
        assert _retries(runtime) == Counter({ids[1]: 1})
        assert _reload(runtime, operation.id).done == 1

    def test_a_canceled_operation_stops(self, runtime, workspace):
        _failed(runtime, workspace, 30)
        base = runtime.clock()
        operation = _create(runtime, workspace, _spec(), rate=2.0)
        runtime.clock = lambda: base + timedelta(seconds=2)
        acted = bulk.advance(runtime, worker="w1")
        with session_scope(runtime.sessions) as session:
            bulk.cancel(session, workspace_id=workspace.id, operation_id=str(operation.id),
                        actor="olga@acme.test", now=base)
        runtime.clock = lambda: base + timedelta(seconds=60)
        assert bulk.advance(runtime, worker="w1") == 0
        stopped = _reload(runtime, operation.id)
        assert (stopped.status, stopped.done) == ("CANCELED", acted)
        assert sum(_retries(runtime).values()) == acted
        with session_scope(runtime.sessions) as session, pytest.raises(
                Conflict, match="already CANCELED"):
            bulk.cancel(session, workspace_id=workspace.id, operation_id=str(operation.id),
                        actor="olga@acme.test", now=base)

    def test_nothing_to_do_and_too_much_are_refused(self, runtime, workspace, monkeypatch):
        with session_scope(runtime.sessions) as session, pytest.raises(
                InvalidInput, match="nothing to do"):
            bulk.create(session, workspace_id=workspace.id, request=_spec(), actor="a",
                        now=runtime.clock())
        _failed(runtime, workspace, 3)
        monkeypatch.setattr(bulk, "MAX_RUNS", 2)
        with session_scope(runtime.sessions) as session, pytest.raises(
                InvalidInput, match="matches 3 runs; one operation acts on at most 2"):
            bulk.create(session, workspace_id=workspace.id, request=_spec(), actor="a",
                        now=runtime.clock())


def _retry_ids(runtime) -> list:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(WorkflowRun.id).where(
            WorkflowRun.retry_of.is_not(None))))
