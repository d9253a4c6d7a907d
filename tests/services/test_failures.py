"""Failures named by cause where they happen, and read back as groups (services/failures)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from relayflow.errors import InvalidInput
from relayflow.services import failures
from relayflow.services import run as run_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import FailureGroup
from tests.services.test_delivery import _email_flow
from tests.support import smtpserver
from tests.support.flows import attempts_of, install, run_of, set_provider, start
from tests.support.worker import drain


def _stopper(key: str = "stopper", node: str = "first") -> dict:
    return {"key": key, "trigger": {"type": "manual"}, "start": node, "nodes": {
        node: {"type": "STOP_ERROR",
               "message": "no plan for {{ contact.email }} (order {{ contact.order }})"}}}


def _caller(url: str) -> dict:
    return {"key": "crm", "trigger": {"type": "manual"}, "start": "lookup", "nodes": {
        "lookup": {"type": "INTEGRATION", "request": {"method": "POST", "url": url},
                   "next": "done"},
        "done": {"type": "END"}}}


def _groups(runtime) -> dict[str, FailureGroup]:
    with session_scope(runtime.sessions) as session:
        return {g.fingerprint: g for g in session.scalars(select(FailureGroup))}


def _search(runtime, workspace, **query) -> failures.FailurePage:
    with session_scope(runtime.sessions) as session:
        return failures.search(session, workspace_id=workspace.id,
                               query=failures.FailureQuery(**query), now=runtime.clock())


class TestNamedWhereTheyFail:
    def test_one_cause_for_many_contacts_is_one_group(self, runtime, workspace):
        install(runtime, workspace.id, _stopper())
        ids = [start(runtime, workspace.id, "stopper", email=f"c{n}@example.com",
                     attributes={"order": 1000 + n})[0] for n in range(3)]
        drain(runtime)
        runs = [run_of(runtime, run_id) for run_id in ids]
        assert {run.status for run in runs} == {"FAILED"}
        assert len({run.fingerprint for run in runs}) == 1
        [group] = _groups(runtime).values()
        assert group.fingerprint == runs[0].fingerprint
        assert (group.kind, group.node_id, group.node_type, group.error_class) == (
            "run", "first", "STOP_ERROR", "StopError")
        assert group.pattern == "no plan for <email> (order <number>)"
        assert group.sample_error in {run.error for run in runs}

    def test_another_node_is_another_cause(self, runtime, workspace):
        install(runtime, workspace.id, _stopper(node="first"))
        [one] = start(runtime, workspace.id, "stopper", email="a@example.com",
                      attributes={"order": 1})
        drain(runtime)
        install(runtime, workspace.id, _stopper(node="second"))
        [two] = start(runtime, workspace.id, "stopper", email="a@example.com",
                      attributes={"order": 1})
        drain(runtime)
        assert run_of(runtime, one).fingerprint != run_of(runtime, two).fingerprint
        assert len(_groups(runtime)) == 2

    def test_http_statuses_are_classes_of_their_own(self, runtime, workspace, http_server):
        prints = {}
        for code in (500, 503):
            install(runtime, workspace.id, _caller(f"{http_server.url}/status/{code}"))
            [run_id] = start(runtime, workspace.id, "crm", email="a@example.com")
            drain(runtime)
            run = run_of(runtime, run_id)
            assert run.status == "FAILED"
            prints[code] = run.fingerprint
        assert prints[500] != prints[503]
        assert {g.error_class for g in _groups(runtime).values()} == {"HTTP 500", "HTTP 503"}

    def test_a_completed_run_has_none(self, runtime, workspace, http_server):
        install(runtime, workspace.id, _caller(f"{http_server.url}/json"))
        [run_id] = start(runtime, workspace.id, "crm", email="a@example.com")
        drain(runtime)
        run = run_of(runtime, run_id)
        assert (run.status, run.fingerprint) == ("COMPLETED", None)
        assert _groups(runtime) == {}

    def test_a_refused_message_names_its_attempt_by_the_smtp_code(self, runtime, workspace):
        sink = smtpserver.start()
        try:
            set_provider(runtime, workspace.id, "email", {
                "type": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
                "from": "ops@relay.test", "timeout": 5})
            install(runtime, workspace.id, _email_flow())
            sink.script.append("550 5.1.1 No such user ann@example.com")
            [run_id] = start(runtime, workspace.id, "mail", email="ann@example.com",
                             attributes={"first_name": "Ann", "plan": "pro"})
            drain(runtime)
        finally:
            sink.close()
        [attempt] = attempts_of(runtime, run_id)
        assert attempt.status == "FAILED"
        assert attempt.fingerprint is not None
        group = _groups(runtime)[attempt.fingerprint]
        assert (group.kind, group.node_id, group.node_type, group.error_class) == (
            "delivery", "send", "SEND_MESSAGE", "SMTP 550")
        assert "<email>" in group.pattern
        assert run_of(runtime, run_id).fingerprint is None  # the run went on: COMPLETED


class TestGroups:
    def test_counts_first_and_last_seen_and_the_sparkline(self, runtime, workspace):
        install(runtime, workspace.id, _stopper())
        ids = [start(runtime, workspace.id, "stopper", email=f"c{n}@example.com",
                     attributes={"order": n})[0] for n in range(4)]
        drain(runtime)
        page = _search(runtime, workspace, range="24h")
        [group] = page.groups
        runs = [run_of(runtime, run_id) for run_id in ids]
        assert (group.count, group.unresolved) == (4, 4)
        assert group.first_seen == min(r.created_at for r in runs)
        assert group.last_seen == max(r.created_at for r in runs)
        assert sum(group.buckets) == 4
        # Bars of an hour from the hour the day began in, each run in its hour's.
        assert page.bars.width == timedelta(hours=1)
        assert page.bars.origin <= page.start < page.bars.origin + page.bars.width
        assert len(group.buckets) == page.bars.count in (24, 25)
        bars = [0] * page.bars.count
        for run in runs:
            bars[(run.created_at - page.bars.origin) // page.bars.width] += 1
        assert group.buckets == bars
        assert (group.workflow_key, group.kind) == ("stopper", "run")

    def test_a_completed_retry_resolves_its_failure(self, runtime, workspace):
        install(runtime, workspace.id, _stopper())
        first = start(runtime, workspace.id, "stopper", email="c0@example.com",
                      attributes={"order": 0})[0]
        start(runtime, workspace.id, "stopper", email="c1@example.com", attributes={"order": 1})
        drain(runtime)
        # The fix: the workflow's version 2 ends instead.
        install(runtime, workspace.id, {"key": "stopper", "trigger": {"type": "manual"},
                                        "start": "first", "nodes": {"first": {"type": "END"}}})
        with session_scope(runtime.sessions) as session:
            retry = run_service.retry(session, workspace_id=workspace.id, run_id=first,
                                      actor="test", now=runtime.clock(), version="current")
            retry_id = retry.id
        drain(runtime)
        assert run_of(runtime, retry_id).status == "COMPLETED"
        [group] = _search(runtime, workspace).groups
        assert (group.count, group.unresolved) == (2, 1)

    def test_filters_kind_workflow_and_range(self, runtime, workspace):
        install(runtime, workspace.id, _stopper("one"))
        install(runtime, workspace.id, _stopper("two"))
        for key in ("one", "two"):
            start(runtime, workspace.id, key, email="a@example.com", attributes={"order": 1})
        drain(runtime)
        assert {g.workflow_key for g in _search(runtime, workspace).groups} == {"one", "two"}
        assert [g.workflow_key for g in _search(runtime, workspace, workflow="two").groups] == [
            "two"]
        assert _search(runtime, workspace, workflow="nope").groups == []
        assert _search(runtime, workspace, kind="delivery").groups == []
        later = runtime.clock() + timedelta(days=2)
        with session_scope(runtime.sessions) as session:
            old = failures.search(session, workspace_id=workspace.id,
                                  query=failures.FailureQuery(range="24h"), now=later)
        assert old.groups == []

    def test_pages_by_cursor_without_repeats(self, runtime, workspace):
        for n in range(3):
            install(runtime, workspace.id, _stopper(f"w{n}"))
            start(runtime, workspace.id, f"w{n}", email="a@example.com", attributes={"order": 1})
            drain(runtime)
        seen, cursor = [], None
        while True:
            with session_scope(runtime.sessions) as session:
                page = failures.search(session, workspace_id=workspace.id,
                                       query=failures.FailureQuery(), limit=1, cursor=cursor,
                                       now=runtime.clock())
            seen += [g.workflow_key for g in page.groups]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == ["w2", "w1", "w0"]

    @pytest.mark.parametrize(("query", "message"), [
        ({"kind": "runs"}, "kind must be one of run, delivery"),
        ({"range": "2d"}, "range must be one of"),
        ({"range": "24h", "created_from": "x"}, "either range or from/to"),
    ])
    def test_bad_input_is_a_clear_error(self, runtime, workspace, query, message):
        with pytest.raises(InvalidInput, match=message):
            _search(runtime, workspace, **query)
