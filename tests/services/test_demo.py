"""The demo workspace, made by the real services: besides its manual runs, signed webhook
runs (one sent twice) that look accounts up in a simulated CRM with retries, their
onboarding children, SMS retried and one resent by hand, and a weekly schedule's ticks.

A short history (9 days, one manual run a day) on a fixed clock (a Wednesday, so the
schedule ticks on two Mondays) keeps it fast; the CLI test seeds the full month."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from relayflow.delivery.egress import AllowList
from relayflow.services import demo, demo_simulation
from relayflow.services import network as network_service
from relayflow.services import provider as provider_service
from relayflow.services import secret as secret_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, read_scope, session_scope
from relayflow.storage.models import (
    DeliveryAttempt,
    RunStep,
    ScheduleTick,
    TriggerEvent,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
)
from tests.conftest import TEST_SECRET_KEY, make_workspace
from tests.support.flows import install

NOW = datetime(2026, 3, 11, 12, tzinfo=UTC)  # a Wednesday
WEEKLY = {"key": "other-weekly", "trigger": {"type": "schedule", "cron": "0 9 * * 1"},
          "start": "done", "nodes": {"done": {"type": "END"}}}


@pytest.fixture
def seeded(db_url: str) -> Iterator[tuple[Runtime, Any]]:
    """The demo made on a runtime whose instance allows no private address (as the CLI's
    by default): only the demo workspace's own setting lets it reach 127.0.0.1. Another
    workspace has a schedule active since long before, which the demo must not tick."""
    engine = make_engine(db_url)
    runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(TEST_SECRET_KEY),
                      network_allow=AllowList(), clock=lambda: NOW - timedelta(days=60))
    other = make_workspace(runtime, "acme")
    install(runtime, other.id, WEEKLY)
    runtime.clock = lambda: NOW
    demo.ensure(runtime, days=9, runs_per_day=1)
    with read_scope(runtime.sessions) as session:
        workspace_id = session.scalar(select(Workflow.workspace_id).where(
            Workflow.key == demo_simulation.SIGNUP))
    yield runtime, workspace_id
    engine.dispose()


def _runs(session: Any, key: str) -> list[WorkflowRun]:
    return list(session.scalars(select(WorkflowRun).join(Workflow).where(Workflow.key == key)))


class TestEnsure:
    def test_signed_webhooks_look_up_the_crm_with_retries_and_start_onboarding(
            self, seeded: tuple[Runtime, Any]) -> None:
        runtime, _ = seeded
        with read_scope(runtime.sessions) as session:
            signups = _runs(session, demo_simulation.SIGNUP)
            lookups = list(session.scalars(select(RunStep).where(
                RunStep.node_id == "crm_lookup")))
            children = [run for run in _runs(session, "onboarding") if run.parent_run_id]
            events = list(session.scalars(select(TriggerEvent)))
        assert {run.trigger_type for run in signups} == {"webhook"}
        assert all(run.idempotency_key.startswith("signup-") for run in signups)
        twice = [run for run in signups if run.duplicates_ignored]
        assert twice
        assert {(e.source, e.code, e.run_id) for e in events} >= {
            ("webhook", "duplicate_trigger", run.id) for run in twice}
        found = [step for step in lookups if step.status == "COMPLETED"]
        assert all(set(step.output) == {"account_id", "plan", "owner", "request_id", "status"}
                   for step in found)
        assert {step.response["attempts"] for step in found if step.response} >= {1, 2, 3}
        [failed] = [run for run in signups if run.status == "FAILED"]
        assert failed.error == "request failed after 3 attempt(s): HTTP 503"
        assert len(children) == len(signups) - 1  # all but the one whose lookup failed
        assert {run.trigger_type for run in children} == {"upstream"}
        assert {run.parent_run_id for run in children} == {
            run.id for run in signups if run.status == "COMPLETED"}

    def test_sms_retries_a_resend_and_schedule_ticks_then_nothing_left_reachable(
            self, seeded: tuple[Runtime, Any]) -> None:
        runtime, workspace_id = seeded
        with session_scope(runtime.sessions) as session:
            sms = list(session.scalars(select(DeliveryAttempt).where(
                DeliveryAttempt.channel == "sms")))
            ticks = list(session.scalars(select(ScheduleTick)))
            scheduled = _runs(session, demo.SCHEDULE)
            allow = network_service.show(session, workspace_id=workspace_id)
            provider = provider_service.show(session, workspace_id=workspace_id, channel="sms")
            secrets = secret_service.names(session, workspace_id)
            url = session.scalar(select(WorkflowVersion.definition).join(
                Workflow, Workflow.current_version_id == WorkflowVersion.id).where(
                Workflow.key == demo_simulation.SIGNUP))["nodes"]["crm_lookup"]["request"]["url"]
        retried = [a for a in sms if a.retry_of is not None]
        assert {a.status for a in retried} >= {"FAILED", "DELIVERED"}
        assert max(a.attempt_number for a in sms) == runtime.delivery_max_attempts
        [resent] = [a for a in sms if a.resend_of is not None]
        assert (resent.status, resent.actor) == ("SENT", "demo@example.com")
        assert resent.reason == demo_simulation.RESEND_REASON
        assert {a.status for a in sms if a.id == resent.resend_of} == {"FAILED"}
        assert {t.workflow_id for t in ticks} == {scheduled[0].workflow_id}  # not acme's
        assert [t.tick for t in sorted(ticks, key=lambda t: t.tick)] == [
            datetime(2026, 3, 2, 8, tzinfo=UTC), datetime(2026, 3, 9, 8, tzinfo=UTC)]
        assert sum(t.opened for t in ticks) == len(scheduled) > 0
        assert {run.trigger_type for run in scheduled} == {"schedule"}
        # The simulated services are gone: nothing on loopback stays allowed or in use.
        assert allow == []
        assert provider == {"type": "outbox"}
        assert url.startswith("http://127.0.0.1:")
        assert demo_simulation.SECRET_NAME in secrets
