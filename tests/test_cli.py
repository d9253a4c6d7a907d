"""The `relayflow` command line against a real database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relayflow.cli import app
from relayflow.config import get_settings
from relayflow.services import run as run_service
from relayflow.services import workspace as workspace_service
from relayflow.storage.db import session_scope
from tests.conftest import TEST_SECRET_KEY
from tests.support.flows import install, run_of, start, statuses, steps_of
from tests.support.worker import drain

EXAMPLES = Path(__file__).parent.parent / "examples"


def _trigger_types(runtime) -> set[str]:
    from sqlalchemy import select

    from relayflow.storage.models import WorkflowRun

    with session_scope(runtime.sessions) as session:
        return set(session.scalars(select(WorkflowRun.trigger_type).distinct()))


@pytest.fixture
def cli(db_url, monkeypatch):
    monkeypatch.setenv("RELAYFLOW_DATABASE_URL", db_url)
    monkeypatch.setenv("RELAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


class TestWorkspaceCreate:
    def test_json_prints_one_line_with_slug_and_key(self, cli):
        result = cli("workspace", "create", "acme", "--json")
        assert result.exit_code == 0
        [line] = result.stdout.strip().splitlines()
        payload = json.loads(line)
        assert payload["slug"] == "acme"
        assert payload["api_key"].startswith("rf_")

    def test_duplicate_slug_is_refused(self, cli):
        cli("workspace", "create", "acme", "--json")
        result = cli("workspace", "create", "acme", "--json")
        assert result.exit_code == 1
        assert "already exists" in result.stderr


class TestApplyTriggerRuns:
    def test_apply_trigger_and_list(self, cli, runtime):
        cli("workspace", "create", "acme", "--json")
        applied = cli("apply", str(EXAMPLES / "lead-score.yaml"), "-w", "acme")
        assert applied.exit_code == 0
        assert "created: version 1, ACTIVE" in applied.stdout
        again = cli("apply", str(EXAMPLES / "lead-score.yaml"), "-w", "acme")
        assert "unchanged" in again.stdout
        triggered = cli("trigger", "lead-score", "--contact", "ada@example.com", "-w", "acme")
        assert triggered.exit_code == 0
        assert "PENDING" in triggered.stdout
        drain(runtime)
        listed = cli("runs", "-w", "acme", "--status", "completed")
        assert "lead-score" in listed.stdout
        assert "ada@example.com" in listed.stdout

    def test_invalid_definition_lists_every_problem(self, cli, tmp_path):
        cli("workspace", "create", "acme", "--json")
        bad = tmp_path / "bad.yaml"
        bad.write_text("key: bad\nstart: a\nnodes:\n  a: {type: FOO}\n"
                       "  b: {type: END}\n  c: {type: WAIT, duration: soon, next: b}\n")
        result = cli("apply", str(bad), "-w", "acme")
        assert result.exit_code == 1
        assert "node a: unknown node type 'FOO'" in result.stderr
        assert "node c: invalid duration 'soon'" in result.stderr

    def test_unknown_workflow(self, cli):
        cli("workspace", "create", "acme", "--json")
        result = cli("trigger", "nope", "--contact", "a@example.com", "-w", "acme")
        assert result.exit_code == 1
        assert "no workflow 'nope'" in result.stderr


class TestKeyAndMember:
    def test_key_create_json(self, cli):
        cli("workspace", "create", "acme", "--json")
        result = cli("key", "create", "acme", "--role", "viewer", "--json")
        assert json.loads(result.stdout)["api_key"].startswith("rf_")

    def test_member_add(self, cli):
        cli("workspace", "create", "acme", "--json")
        result = cli("member", "add", "acme", "Op@Example.com", "--role", "operator",
                     "--password", "correct horse")
        assert result.exit_code == 0


class TestDemo:
    def test_demo_has_runs_of_every_status_and_rotates_its_key(self, cli, runtime):
        first = cli("demo")
        assert first.exit_code == 0
        assert "demo workspace created" in first.stdout
        found = statuses(runtime)
        assert {"COMPLETED", "FAILED", "RUNNING", "CANCELED"} <= set(found)
        assert sum(found.values()) >= 300
        # The CLI's instance allows no loopback: the demo workspace's own setting does.
        assert _trigger_types(runtime) == {"manual", "webhook", "upstream", "schedule",
                                           "retry"}
        key1 = first.stdout.split("API key ")[1].split()[0]
        second = cli("demo")
        key2 = second.stdout.split("API key ")[1].split()[0]
        assert key1 != key2

    def test_demo_shows_failures_their_fix_and_a_bulk_retry(self, cli, runtime):
        from sqlalchemy import select

        from relayflow.storage.models import BulkOperation, FailureGroup, WorkflowRun

        assert cli("demo").exit_code == 0
        with session_scope(runtime.sessions) as session:
            groups = session.scalars(select(FailureGroup).where(
                FailureGroup.kind == "run")).all()
            [operation] = session.scalars(select(BulkOperation)).all()
            retries = session.execute(select(WorkflowRun.status, WorkflowRun.version_id)
                                      .where(WorkflowRun.retry_of.is_not(None))).all()
            canceled = session.scalars(select(WorkflowRun).where(
                WorkflowRun.status == "CANCELED")).all()
        assert {g.error_class for g in groups} >= {"StopError", "UndefinedError"}
        assert (operation.status, operation.version) == ("COMPLETED", "current")
        assert operation.done > 0
        assert len({version for _, version in retries}) == 2  # on both versions
        assert {status for status, _ in retries} == {"FAILED", "COMPLETED"}
        assert all(run.cancel_reason for run in canceled)

    def test_demo_prints_a_sign_in_that_works_and_changes_each_time(self, cli, runtime):
        from relayflow.errors import Unauthorized
        from relayflow.services import login

        def password(output: str) -> str:
            line = next(x for x in output.splitlines() if x.strip().startswith("demo@example.com"))
            return line.split(" / ")[1].split()[0]

        first = password(cli("demo").stdout)
        second = password(cli("demo").stdout)
        assert first != second
        with session_scope(runtime.sessions) as session:
            _, viewer = login.login(session, email="demo@example.com", password=second,
                                    address="cli-test", now=runtime.clock())
            assert viewer.workspace_slug == "demo"
            assert viewer.role == "admin"
        with session_scope(runtime.sessions) as session, pytest.raises(Unauthorized):
            login.login(session, email="demo@example.com", password=first,
                        address="cli-test", now=runtime.clock())


class TestPrune:
    def test_deletes_only_old_finished_runs(self, cli, runtime):
        cli("workspace", "create", "acme", "--json")
        with session_scope(runtime.sessions) as session:
            ws_id = workspace_service.get_by_slug(session, "acme").id
        install(runtime, ws_id, {"key": "w", "trigger": {"type": "manual"}, "start": "a",
                                 "nodes": {"a": {"type": "WAIT", "duration": "1h", "next": "b"},
                                           "b": {"type": "END"}}})
        real, old = runtime.clock, runtime.clock() - timedelta(days=100)
        runtime.clock = lambda: old
        [old_done] = start(runtime, ws_id, "w", email="old@example.com")
        [old_canceled] = start(runtime, ws_id, "w", email="old2@example.com")
        drain(runtime)
        with session_scope(runtime.sessions) as session:
            run_service.cancel(session, workspace_id=ws_id, run_id=old_canceled, actor="t",
                               now=old)
        runtime.clock = lambda: old + timedelta(hours=2)
        drain(runtime)
        runtime.clock = real
        [recent] = start(runtime, ws_id, "w", email="new@example.com")
        drain(runtime)  # parks at the WAIT: RUNNING
        assert run_of(runtime, old_done).status == "COMPLETED"

        result = cli("prune", "--older-than", "90d")
        assert result.exit_code == 0
        assert "deleted 2 runs" in result.stdout
        assert statuses(runtime) == {"RUNNING": 1}
        assert run_of(runtime, recent).status == "RUNNING"
        assert steps_of(runtime, old_done) == []

    def test_dry_run_and_a_workspace_retention(self, cli, runtime):
        cli("workspace", "create", "acme", "--json")
        with session_scope(runtime.sessions) as session:
            ws_id = workspace_service.get_by_slug(session, "acme").id
        install(runtime, ws_id, {"key": "w", "trigger": {"type": "manual"}, "start": "b",
                                 "nodes": {"b": {"type": "END"}}})
        real = runtime.clock
        runtime.clock = lambda: real() - timedelta(days=40)
        [old] = start(runtime, ws_id, "w", email="old@example.com")
        drain(runtime)
        runtime.clock = real

        assert "as long as prune --older-than says" in cli("workspace", "retention", "acme").stdout
        dry = cli("prune", "--older-than", "90d", "--dry-run")
        assert dry.exit_code == 0, dry.stderr
        assert "would delete 0 runs" in dry.stdout
        shown = cli("workspace", "retention", "acme", "--days", "30", "--failed-days", "365")
        assert "keeps its history 30 days, and failures 365 days" in shown.stdout
        dry = cli("prune", "--dry-run")
        assert "would delete 1 runs" in dry.stdout
        assert "acme: 1 runs" in dry.stdout
        assert run_of(runtime, old).status == "COMPLETED"  # still there
        assert "deleted 1 runs" in cli("prune").stdout
        assert cli("workspace", "retention", "acme", "--days", "0").stdout.count(
            "as long as prune --older-than says") == 1
        refused = cli("workspace", "retention", "acme", "--days", "-5")
        assert refused.exit_code == 1
        assert "retention days must be a whole number from 1" in refused.stderr

    def test_bad_age_is_refused(self, cli):
        result = cli("prune", "--older-than", "soon")
        assert result.exit_code == 1
        assert "invalid duration" in result.stderr


class TestProvider:
    SMTP = '{"type": "smtp", "host": "smtp.example.com", "username": "ops", ' \
           '"password_secret": "SMTP_PASS", "from": "ops@example.com"}'

    def _secret(self, runtime, slug: str) -> None:
        from tests.support.flows import set_secret

        with session_scope(runtime.sessions) as session:
            ws = workspace_service.get_by_slug(session, slug)
        set_secret(runtime, ws.id, "SMTP_PASS", "canary-cli-secret")

    def test_show_is_outbox_when_none_is_set(self, cli):
        cli("workspace", "create", "acme", "--json")

        result = cli("provider", "show", "email", "-w", "acme")

        assert result.exit_code == 0
        assert json.loads(result.stdout) == {"type": "outbox"}

    def test_set_then_show(self, cli, runtime):
        cli("workspace", "create", "acme", "--json")
        self._secret(runtime, "acme")

        result = cli("provider", "set", "email", "--workspace", "acme", "--json", self.SMTP)

        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["password_secret"] == "SMTP_PASS"
        shown = cli("provider", "show", "email", "-w", "acme")
        assert json.loads(shown.stdout)["host"] == "smtp.example.com"
        assert "canary-cli-secret" not in result.stdout + shown.stdout

    def test_set_lists_every_problem(self, cli):
        cli("workspace", "create", "acme", "--json")

        result = cli("provider", "set", "email", "-w", "acme", "--json",
                     '{"type": "smtp", "port": 0}')

        assert result.exit_code == 1
        assert "  - host is required" in result.stderr
        assert "  - port must be a number from 1 to 65535" in result.stderr
        assert json.loads(cli("provider", "show", "email", "-w", "acme").stdout) == {
            "type": "outbox"}

    def test_set_refuses_an_unknown_secret(self, cli):
        cli("workspace", "create", "acme", "--json")

        result = cli("provider", "set", "email", "-w", "acme", "--json", self.SMTP)

        assert result.exit_code == 1
        assert "unknown secret 'SMTP_PASS'" in result.stderr

    def test_set_refuses_invalid_json(self, cli):
        cli("workspace", "create", "acme", "--json")

        result = cli("provider", "set", "sms", "-w", "acme", "--json", "{type:")

        assert result.exit_code == 1
        assert "not valid JSON" in result.stderr
