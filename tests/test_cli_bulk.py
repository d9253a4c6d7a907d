"""`relayflow bulk retry|cancel` against a real database."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from relayflow.services import workspace as workspace_service
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, WorkflowRun
from tests.support.flows import install, run_of, start
from tests.support.worker import drain
from tests.test_cli import cli  # noqa: F401 - the fixture


def _setup(cli, runtime) -> list:  # noqa: F811
    cli("workspace", "create", "acme", "--json")
    with session_scope(runtime.sessions) as session:
        workspace_id = workspace_service.get_by_slug(session, "acme").id
    install(runtime, workspace_id, {"key": "stopper", "trigger": {"type": "manual"},
                                    "start": "s", "nodes": {"s": {
                                        "type": "STOP_ERROR", "message": "declined"}}})
    install(runtime, workspace_id, {"key": "waiter", "trigger": {"type": "manual"},
                                    "start": "w", "nodes": {
                                        "w": {"type": "WAIT", "duration": "3d", "next": "e"},
                                        "e": {"type": "END"}}})
    failed = start(runtime, workspace_id, "stopper", email="a@example.com", count=4)
    start(runtime, workspace_id, "waiter", email="b@example.com", count=2)
    drain(runtime)
    return failed


class TestBulkCli:
    def test_dry_run_prints_what_would_happen(self, cli, runtime):  # noqa: F811
        _setup(cli, runtime)
        result = cli("bulk", "retry", "-w", "acme", "--status", "FAILED", "--dry-run")
        assert result.exit_code == 0, result.output
        assert "4 runs match; 4 would be retried" in result.stdout
        assert "up to 0 messages may be sent again" in result.stdout
        with session_scope(runtime.sessions) as session:
            assert session.scalars(select(WorkflowRun).where(
                WorkflowRun.retry_of.is_not(None))).first() is None

    def test_retry_follows_the_operation_to_the_end(self, cli, runtime):  # noqa: F811
        failed = _setup(cli, runtime)
        fingerprint = run_of(runtime, failed[0]).fingerprint
        result = cli("bulk", "retry", "-w", "acme", "--fingerprint", fingerprint,
                     "--version", "current", "--reason", "fixed")
        assert result.exit_code == 0, result.output
        assert "4 runs" in result.stdout
        assert "COMPLETED: 4 done, 0 skipped, 0 failed" in result.stdout
        with session_scope(runtime.sessions) as session:
            retried = Counter(session.scalars(select(WorkflowRun.retry_of).where(
                WorkflowRun.retry_of.is_not(None))))
            [event] = session.scalars(select(AuditEvent).where(
                AuditEvent.action == "bulk.create")).all()
        assert retried == Counter(dict.fromkeys(failed, 1))
        assert event.actor.startswith("cli:")
        assert event.detail["filter"] == {"fingerprint": fingerprint}
        assert (event.detail["action"], event.detail["total"]) == ("retry", 4)

    def test_cancel(self, cli, runtime):  # noqa: F811
        _setup(cli, runtime)
        result = cli("bulk", "cancel", "-w", "acme", "--workflow", "waiter",
                     "--reason", "wrong audience")
        assert result.exit_code == 0, result.output
        assert "COMPLETED: 2 done" in result.stdout
        with session_scope(runtime.sessions) as session:
            canceled = session.scalars(select(WorkflowRun).where(
                WorkflowRun.status == "CANCELED")).all()
        assert len(canceled) == 2

    def test_bad_input_is_a_clear_error(self, cli, runtime):  # noqa: F811
        _setup(cli, runtime)
        for args, message in ((["bulk", "retry", "-w", "acme"], "give at least one filter"),
                              (["bulk", "retry", "-w", "acme", "--status", "FAILED",
                                "--version", "newest"], "version must be one of"),
                              (["bulk", "retry", "-w", "nope", "--status", "FAILED"],
                               "nope"),
                              (["bulk", "cancel", "-w", "acme", "--range", "2d"],
                               "range must be one of")):
            result = cli(*args)
            assert result.exit_code == 1, (args, result.output)
            assert message in result.stderr, (args, result.stderr)
