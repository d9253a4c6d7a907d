"""The command line for one run (show, cancel, retry), runs of one contact, the workspace
that must be named, and what `migrate` says, against a real database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relayflow.cli import app
from relayflow.config import get_settings
from relayflow.services import workspace as workspace_service
from relayflow.storage.db import session_scope
from tests.conftest import TEST_SECRET_KEY
from tests.support.flows import install, run_of, start
from tests.support.worker import drain

WAITS = {"key": "waits", "trigger": {"type": "manual"}, "start": "pause",
         "nodes": {"pause": {"type": "WAIT", "duration": "3d", "next": "done"},
                   "done": {"type": "END"}}}
FAILS = {"key": "fails", "trigger": {"type": "manual"}, "start": "stop",
         "nodes": {"stop": {"type": "STOP_ERROR", "message": "no plan"}}}


@pytest.fixture
def cli(db_url, monkeypatch):
    monkeypatch.setenv("RELAYFLOW_DATABASE_URL", db_url)
    monkeypatch.setenv("RELAYFLOW_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.delenv("RELAYFLOW_WORKSPACE", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


@pytest.fixture
def acme(cli, runtime):
    cli("workspace", "create", "acme", "--json")
    with session_scope(runtime.sessions) as session:
        workspace_id = workspace_service.get_by_slug(session, "acme").id
    install(runtime, workspace_id, WAITS)
    install(runtime, workspace_id, FAILS)
    return workspace_id


def test_show_prints_the_run_and_its_steps(cli, runtime, acme):
    run_id, = start(runtime, acme, "fails", email="ada@example.com")
    drain(runtime)
    shown = cli("run", "show", str(run_id), "-w", "acme", "--json")
    assert shown.exit_code == 0
    body = json.loads(shown.stdout)
    assert (body["id"], body["workflow"], body["status"]) == (str(run_id), "fails", "FAILED")
    assert body["contact"] == "ada@example.com"
    assert body["error"] == "no plan"
    assert [(s["node"], s["status"]) for s in body["steps"]] == [
        ("trigger", "COMPLETED"), ("stop", "FAILED")]
    table = cli("run", "show", str(run_id), "-w", "acme")
    assert "FAILED" in table.stdout
    assert "no plan" in table.stdout
    missing = cli("run", "show", "0190e4a1-0000-7000-8000-000000000000", "-w", "acme")
    assert missing.exit_code == 1
    assert "no run" in missing.stderr


def test_runs_of_one_contact(cli, runtime, acme):
    ada, = start(runtime, acme, "waits", email="ada@example.com")
    start(runtime, acme, "waits", email="bob@example.com")
    listed = cli("runs", "-w", "acme", "--contact", "ADA@example.com")
    assert listed.exit_code == 0
    lines = listed.stdout.strip().splitlines()[1:]  # piped: a header, then one line a run
    assert [line.split("\t")[0] for line in lines] == [str(ada)]
    unknown = cli("runs", "-w", "acme", "--contact", "zed@example.com")
    assert unknown.exit_code == 1
    assert "no contact zed@example.com" in unknown.stderr


def test_cancel_and_retry(cli, runtime, acme):
    parked, = start(runtime, acme, "waits", email="ada@example.com")
    failed, = start(runtime, acme, "fails", email="ada@example.com")
    drain(runtime)
    canceled = cli("run", "cancel", str(parked), "-w", "acme", "--reason", "asked to stop")
    assert canceled.exit_code == 0, canceled.stderr
    assert f"run {parked} CANCELED" in canceled.stdout
    run = run_of(runtime, parked)
    assert (run.status, run.cancel_reason, run.canceled_by) == (
        "CANCELED", "asked to stop", "cli")
    again = cli("run", "cancel", str(parked), "-w", "acme")
    assert again.exit_code == 1
    assert "already CANCELED" in again.stderr

    retried = cli("run", "retry", str(failed), "-w", "acme")
    assert retried.exit_code == 0, retried.stderr
    new_id = retried.stdout.split()[1]
    assert run_of(runtime, uuid.UUID(new_id)).retry_of == failed
    wrong = cli("run", "retry", str(failed), "-w", "acme", "--version", "newest")
    assert wrong.exit_code == 1


def test_the_workspace_must_be_named(cli, acme):
    result = cli("runs")
    assert result.exit_code == 2
    assert "Missing option '--workspace'" in result.output
    assert "RELAYFLOW_WORKSPACE" in result.output


def test_migrate_says_what_it_did(cli, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RELAYFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    get_settings.cache_clear()
    first = cli("migrate")
    assert first.exit_code == 0
    assert first.stdout.startswith("database created (schema ")
    second = cli("migrate")
    assert second.stdout.startswith("database is up to date (schema ")


def test_demo_sign_in_names_the_address_it_serves(cli, monkeypatch):
    monkeypatch.setenv("RELAYFLOW_PORT", "8123")
    monkeypatch.setenv("RELAYFLOW_HOST", "0.0.0.0")
    get_settings.cache_clear()
    out = cli("demo", "--quiet").stdout
    key = out.split("API key ")[1].split()[0]
    assert "Demo workspace 'demo' at http://127.0.0.1:8123" in out
    assert (f"curl -H 'Authorization: Bearer {key}' http://127.0.0.1:8123/api/v1/runs"
            in out)
