"""The schedule trigger: fire times across DST, and ticks that are never doubled."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text, update

from relayflow.services import contact as contact_service
from relayflow.services import retention, schedule
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from relayflow.storage.models import Contact, ScheduleTick, Workflow, WorkflowRun
from tests.conftest import make_workspace
from tests.support.flows import install
from tests.support.processes import wait_until
from tests.support.worker import drain

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
WEEKDAY_9_BERLIN = {"type": "schedule", "cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}
MONDAY = datetime(2026, 3, 9, tzinfo=UTC)  # 09:00 in Berlin is 08:00 UTC (CET) this week


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def cron(expr: str, zone: str = "UTC", **extra: Any) -> dict[str, Any]:
    return {"type": "schedule", "cron": expr, "timezone": zone, **extra}


def ticks_on(trigger: dict[str, Any], day: str) -> list[datetime]:
    """Every fire time during one local calendar day of the trigger's timezone."""
    zone = ZoneInfo(trigger["timezone"])
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    end = (start + timedelta(days=1)).replace(tzinfo=zone)  # wall-clock midnight to midnight
    found = schedule.next_fire_times(trigger, now=start - timedelta(microseconds=1), count=60)
    return [t for t in found if t < end.astimezone(UTC)]


# --- when ----------------------------------------------------------------------------


class TestNextFireTimes:
    def test_five_weekday_mornings_across_the_new_york_spring_forward(self):
        # Sunday 2026-03-08 the clocks go from EST (-5) to EDT (-4): 09:00 moves an hour
        # earlier in UTC, and the weekend has no ticks.
        trigger = cron("0 9 * * 1-5", "America/New_York")
        assert schedule.next_fire_times(trigger, now=utc(2026, 3, 5, 12)) == [
            utc(2026, 3, 5, 14), utc(2026, 3, 6, 14), utc(2026, 3, 9, 13),
            utc(2026, 3, 10, 13), utc(2026, 3, 11, 13)]

    def test_five_weekday_mornings_across_the_berlin_spring_forward(self):
        trigger = WEEKDAY_9_BERLIN
        assert schedule.next_fire_times(trigger, now=utc(2026, 3, 26, 12)) == [
            utc(2026, 3, 27, 8), utc(2026, 3, 30, 7), utc(2026, 3, 31, 7),
            utc(2026, 4, 1, 7), utc(2026, 4, 2, 7)]

    def test_a_tick_exactly_at_now_is_not_a_next_fire_time(self):
        trigger = cron("0 9 * * *")
        assert schedule.next_fire_times(trigger, now=utc(2026, 5, 1, 9), count=2) == [
            utc(2026, 5, 2, 9), utc(2026, 5, 3, 9)]

    def test_count_gives_that_many(self):
        assert len(schedule.next_fire_times(cron("*/5 * * * *"), now=MONDAY, count=12)) == 12

    def test_at_has_one_fire_time_until_it_passes(self):
        trigger = {"type": "schedule", "at": "2026-12-01T09:00:00", "timezone": "Europe/Berlin"}
        assert schedule.next_fire_times(trigger, now=utc(2026, 11, 1)) == [utc(2026, 12, 1, 8)]
        assert schedule.next_fire_times(trigger, now=utc(2026, 12, 1, 8)) == []

    def test_a_cron_that_never_matches_has_none(self):
        assert schedule.next_fire_times(cron("0 0 30 2 *"), now=MONDAY) == []


class TestTicksAcrossDst:
    """Fire times on DST-change days, as UTC instants and as counts per local day."""

    @pytest.mark.parametrize(("zone", "day", "expected"), [
        # spring forward: 02:00-03:00 does not exist; the 02:30 job runs once, at 03:00
        ("Europe/Berlin", "2026-03-29", [utc(2026, 3, 29, 1)]),
        ("America/New_York", "2026-03-08", [utc(2026, 3, 8, 7)]),
        # fall back: 02:30 (Berlin) happens twice; a fixed-time job runs at the first one only
        ("Europe/Berlin", "2026-10-25", [utc(2026, 10, 25, 0, 30)]),
        ("Europe/Berlin", "2026-10-24", [utc(2026, 10, 24, 0, 30)]),
        ("Europe/Berlin", "2026-10-26", [utc(2026, 10, 26, 1, 30)]),
    ])
    def test_a_daily_0230_job_runs_once_a_day(self, zone, day, expected):
        assert ticks_on(cron("30 2 * * *", zone), day) == expected

    def test_a_daily_0130_new_york_job_runs_once_on_the_fall_back_day(self):
        # 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST)
        assert ticks_on(cron("30 1 * * *", "America/New_York"), "2026-11-01") == [
            utc(2026, 11, 1, 5, 30)]

    @pytest.mark.parametrize(("zone", "day", "count"), [
        ("Europe/Berlin", "2026-03-29", 23), ("Europe/Berlin", "2026-10-25", 25),
        ("Europe/Berlin", "2026-06-01", 24), ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
    ])
    def test_an_hourly_job_follows_real_time(self, zone, day, count):
        ticks = ticks_on(cron("0 * * * *", zone), day)
        assert len(ticks) == count
        assert all(b - a == timedelta(hours=1) for a, b in pairwise(ticks))

    @pytest.mark.parametrize(("expr", "day", "count"), [
        ("@hourly", "2026-10-25", 25), ("0 */2 * * *", "2026-10-25", 13),
        ("@daily", "2026-10-25", 1), ("0 2 * * *", "2026-10-25", 1),
    ])
    def test_aliases_and_steps_follow_the_same_rule(self, expr, day, count):
        assert len(ticks_on(cron(expr, "Europe/Berlin"), day)) == count

    def test_an_hourly_job_fires_in_both_passes_of_the_repeated_hour(self):
        ticks = ticks_on(cron("0 * * * *", "Europe/Berlin"), "2026-10-25")
        assert utc(2026, 10, 25, 0) in ticks  # 02:00 CEST
        assert utc(2026, 10, 25, 1) in ticks  # 02:00 CET

    def test_a_quarter_hourly_job_in_the_missing_hour_runs_once_after_the_gap(self):
        ticks = ticks_on(cron("*/15 2 * * *", "Europe/Berlin"), "2026-03-29")
        assert ticks == [utc(2026, 3, 29, 1)]

    def test_a_quarter_hourly_job_in_the_repeated_hour_runs_in_its_first_pass(self):
        ticks = ticks_on(cron("*/15 2 * * *", "Europe/Berlin"), "2026-10-25")
        assert ticks == [utc(2026, 10, 25, 0, m) for m in (0, 15, 30, 45)]

    def test_weekday_9am_berlin_is_0800_utc_before_and_0700_after(self):
        assert ticks_on(WEEKDAY_9_BERLIN, "2026-03-27") == [utc(2026, 3, 27, 8)]
        assert ticks_on(WEEKDAY_9_BERLIN, "2026-03-30") == [utc(2026, 3, 30, 7)]
        assert ticks_on(WEEKDAY_9_BERLIN, "2026-03-29") == []  # a Sunday


class TestDueTick:
    def test_the_latest_tick_at_or_before_now(self):
        assert schedule.due_tick(WEEKDAY_9_BERLIN, now=utc(2026, 3, 10, 12),
                                 not_before=LONG_AGO) == utc(2026, 3, 10, 8)

    def test_a_tick_exactly_at_now_is_due(self):
        assert schedule.due_tick(WEEKDAY_9_BERLIN, now=utc(2026, 3, 10, 8),
                                 not_before=LONG_AGO) == utc(2026, 3, 10, 8)

    def test_after_downtime_only_the_latest_missed_tick(self):
        # down from Monday morning to Saturday: Friday's tick, not Tuesday's to Friday's
        assert schedule.due_tick(WEEKDAY_9_BERLIN, now=utc(2026, 3, 14, 12),
                                 not_before=utc(2026, 3, 9, 6)) == utc(2026, 3, 13, 8)

    def test_no_tick_from_before_not_before(self):
        assert schedule.due_tick(WEEKDAY_9_BERLIN, now=utc(2026, 3, 10, 12),
                                 not_before=utc(2026, 3, 10, 8, 0, 1)) is None

    def test_on_the_spring_forward_day_the_0230_job_is_due_at_0300(self):
        trigger = cron("30 2 * * *", "Europe/Berlin")
        assert schedule.due_tick(trigger, now=utc(2026, 3, 29, 0, 59),
                                 not_before=LONG_AGO) == utc(2026, 3, 28, 1, 30)
        assert schedule.due_tick(trigger, now=utc(2026, 3, 29, 1),
                                 not_before=LONG_AGO) == utc(2026, 3, 29, 1)

    def test_on_the_fall_back_day_the_second_0230_is_not_a_new_tick(self):
        trigger = cron("30 2 * * *", "Europe/Berlin")
        assert schedule.due_tick(trigger, now=utc(2026, 10, 25, 1, 45),
                                 not_before=LONG_AGO) == utc(2026, 10, 25, 0, 30)

    def test_at_is_due_from_its_instant_on(self):
        trigger = {"type": "schedule", "at": "2026-12-01T09:00:00", "timezone": "Europe/Berlin"}
        assert schedule.due_tick(trigger, now=utc(2026, 12, 1, 7, 59),
                                 not_before=LONG_AGO) is None
        assert schedule.due_tick(trigger, now=utc(2026, 12, 5),
                                 not_before=LONG_AGO) == utc(2026, 12, 1, 8)

    def test_a_naive_at_without_timezone_is_utc_and_an_aware_one_keeps_its_offset(self):
        naive = {"type": "schedule", "at": "2026-12-01T09:00:00"}
        aware = {"type": "schedule", "at": "2026-12-01T09:00:00-05:00", "timezone": "Asia/Tokyo"}
        assert schedule.due_tick(naive, now=utc(2027, 1, 1), not_before=LONG_AGO) == utc(
            2026, 12, 1, 9)
        assert schedule.due_tick(aware, now=utc(2027, 1, 1), not_before=LONG_AGO) == utc(
            2026, 12, 1, 14)

    def test_an_at_before_not_before_never_fires(self):
        trigger = {"type": "schedule", "at": "2026-12-01T09:00:00"}
        assert schedule.due_tick(trigger, now=utc(2027, 1, 1),
                                 not_before=utc(2026, 12, 2)) is None


class TestIdempotencyKey:
    def test_names_the_tick_in_utc_and_the_contact(self):
        contact_id = uuid.UUID("01234567-89ab-7def-8123-456789abcdef")
        tick = datetime(2026, 3, 9, 9, tzinfo=ZoneInfo("Europe/Berlin"))
        assert schedule.idempotency_key(tick, contact_id) == (
            "schedule:2026-03-09T08:00:00Z:01234567-89ab-7def-8123-456789abcdef")


# --- the scheduler --------------------------------------------------------------------


def _definition(key: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "trigger": trigger, "start": "done", "nodes": {"done": {"type": "END"}}}


def _at(runtime: Runtime, when: datetime) -> Runtime:
    runtime.clock = lambda: when
    return runtime


def _setup(runtime: Runtime, workspace_id: uuid.UUID, trigger: dict[str, Any], *,
           activated: datetime, key: str = "digest", activate: bool = True) -> None:
    install(_at(runtime, activated), workspace_id, _definition(key, trigger), activate=activate)


def _contacts(runtime: Runtime, workspace_id: uuid.UUID, *attributes: dict[str, Any],
              prefix: str = "c") -> list[uuid.UUID]:
    ids = []
    with session_scope(runtime.sessions) as session:
        for i, attrs in enumerate(attributes):
            contact = contact_service.resolve(
                session, workspace_id=workspace_id,
                spec={"email": f"{prefix}{i}@example.com", "attributes": attrs},
                now=utc(2026, 1, 1))
            ids.append(contact.id)
    return ids


def _runs(runtime: Runtime, key: str = "digest") -> list[WorkflowRun]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(
            select(WorkflowRun).join(Workflow, Workflow.id == WorkflowRun.workflow_id)
            .where(Workflow.key == key).order_by(WorkflowRun.created_at, WorkflowRun.id)))


def _forget_state(runtime: Runtime) -> None:
    """What a scheduler that crashed before recording its tick leaves behind."""
    with session_scope(runtime.sessions) as session:
        session.execute(update(Workflow).values(schedule_last_tick=None))


def _waiting_on_a_lock(runtime: Runtime) -> bool:
    with session_scope(runtime.sessions) as session:
        return bool(session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")))


def _pairs(runs: list[WorkflowRun]) -> list[tuple[uuid.UUID | None, str]]:
    return sorted((r.contact_id, r.trigger_payload["scheduled_for"]) for r in runs)


class TestTick:
    def test_one_run_per_contact_with_the_schedule_payload_and_key(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        contact_ids = _contacts(runtime, workspace.id, {}, {}, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8, 0, 3)) == 3
        runs = _runs(runtime)
        assert sorted(r.contact_id for r in runs) == sorted(contact_ids)
        for run in runs:
            assert run.trigger_type == "schedule"
            assert run.trigger_payload == {"scheduled_for": "2026-03-09T08:00:00+00:00",
                                           "schedule": "0 9 * * 1-5"}
            assert run.idempotency_key == f"schedule:2026-03-09T08:00:00Z:{run.contact_id}"
            assert run.status == "PENDING"
        drain(_at(runtime, utc(2026, 3, 9, 8, 0, 4)))
        assert {r.status for r in _runs(runtime)} == {"COMPLETED"}

    def test_without_audience_every_contact_of_the_workspace_and_no_other(
            self, runtime, workspace, other_workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        mine = _contacts(runtime, workspace.id, {"plan": "pro"}, {})
        _contacts(runtime, other_workspace.id, {"plan": "pro"}, {}, prefix="other")
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 2
        assert sorted(r.contact_id for r in _runs(runtime)) == sorted(mine)

    def test_audience_selects_contacts_and_a_raising_one_does_not_match(
            self, runtime, workspace, caplog):
        trigger = {**WEEKDAY_9_BERLIN, "audience": "contact.plan == 'pro'"}
        _setup(runtime, workspace.id, trigger, activated=utc(2026, 3, 9, 6))
        pro, _free, _no_plan = _contacts(runtime, workspace.id, {"plan": "pro"},
                                         {"plan": "free"}, {})
        with caplog.at_level(logging.INFO, logger="relayflow.services.schedule"):
            assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 1
        assert [r.contact_id for r in _runs(runtime)] == [pro]
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warning.audience_errors == 1
        assert "plan" in warning.getMessage()

    def test_calling_it_again_for_the_same_now_opens_nothing(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {}, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 2
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 0
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 11)) == 0
        assert len(_runs(runtime)) == 2

    def test_a_restarted_scheduler_that_lost_its_state_does_not_double_a_tick(
            self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {}, {}, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 3
        _forget_state(runtime)
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8, 0, 30)) == 0
        runs = _runs(runtime)
        assert len(runs) == 3
        assert len(set(_pairs(runs))) == 3

    def test_a_rescan_enrols_contacts_a_crashed_scan_did_not_reach(
            self, runtime, workspace, monkeypatch):
        monkeypatch.setattr(schedule, "BATCH", 2)
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        first = _contacts(runtime, workspace.id, {}, {}, {}, {}, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 5
        with session_scope(runtime.sessions) as session:  # as if the last batch never ran
            session.execute(WorkflowRun.__table__.delete().where(
                WorkflowRun.contact_id.in_(first[-1:])))
        _forget_state(runtime)
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8, 1)) == 1
        assert sorted(r.contact_id for r in _runs(runtime)) == sorted(first)

    def test_each_new_tick_opens_new_runs(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {}, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 2
        assert schedule.tick(runtime, now=utc(2026, 3, 10, 8)) == 2
        assert [p[1] for p in _pairs(_runs(runtime))].count("2026-03-10T08:00:00+00:00") == 2

    def test_large_audiences_are_enrolled_in_batches(self, runtime, workspace, monkeypatch):
        monkeypatch.setattr(schedule, "BATCH", 3)
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        contact_ids = _contacts(runtime, workspace.id, *({} for _ in range(7)))
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 7
        assert sorted(r.contact_id for r in _runs(runtime)) == sorted(contact_ids)
        assert _ticks(runtime) == [(utc(2026, 3, 9, 8), utc(2026, 3, 9, 8), None, 7, 0, 0, 0)]


class TestTickRecord:
    """Each fired tick leaves one row (services/schedule.py, ScheduleTick): the audience as
    it stood and what came of it, which is how a contact's "not in the audience" is told
    without a row per contact."""

    def test_a_tick_records_its_audience_and_counts(self, runtime, workspace):
        trigger = {**WEEKDAY_9_BERLIN, "audience": "contact.plan == 'pro'"}
        _setup(runtime, workspace.id, trigger, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {"plan": "pro"}, {"plan": "free"}, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8, 0, 3)) == 1
        assert _ticks(runtime) == [(utc(2026, 3, 9, 8), utc(2026, 3, 9, 8, 0, 3),
                                    "contact.plan == 'pro'", 1, 0, 2, 1)]

    def test_a_scan_again_after_a_lost_mark_records_what_it_found(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {}, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 2
        _forget_state(runtime)
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8, 1)) == 0
        assert [t[3:5] for t in _ticks(runtime)] == [(2, 0), (0, 2)]

    def test_a_tick_passed_over_records_nothing(self, runtime, workspace):
        """A scan that left the tick to a later poll (the workflow deactivated) is not a
        fired tick."""
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6),
               activate=False)
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 0
        assert _ticks(runtime) == []

    def test_prune_lets_ticks_go_with_the_runs_of_their_time(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 0  # nobody yet
        assert schedule.tick(runtime, now=utc(2026, 6, 9, 7)) == 0
        _at(runtime, utc(2026, 6, 10))
        retention.prune(runtime, older_than="60d")
        assert [t[0] for t in _ticks(runtime)] == [utc(2026, 6, 9, 7)]


def _ticks(runtime: Runtime) -> list[tuple]:
    with session_scope(runtime.sessions) as session:
        return [(t.tick, t.fired_at, t.audience, t.opened, t.existing, t.outside,
                 t.audience_errors) for t in session.scalars(
                    select(ScheduleTick).order_by(ScheduleTick.fired_at))]


class TestTickAfterDowntime:
    def test_only_the_latest_missed_tick_fires_once(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {}, {})
        # no scheduler from Monday 06:00 until Thursday noon: four ticks were missed
        assert schedule.tick(runtime, now=utc(2026, 3, 12, 12)) == 2
        assert schedule.tick(runtime, now=utc(2026, 3, 12, 12, 5)) == 0
        assert {p[1] for p in _pairs(_runs(runtime))} == {"2026-03-12T08:00:00+00:00"}
        assert len(_runs(runtime)) == 2

    def test_the_schedule_resumes_at_the_next_tick(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {})
        schedule.tick(runtime, now=utc(2026, 3, 12, 12))
        assert schedule.tick(runtime, now=utc(2026, 3, 13, 8, 0, 2)) == 1
        assert [p[1] for p in _pairs(_runs(runtime))] == [
            "2026-03-12T08:00:00+00:00", "2026-03-13T08:00:00+00:00"]


class TestTickActivation:
    def test_no_tick_from_before_activation(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 8, 30))
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 9)) == 0
        assert schedule.tick(runtime, now=utc(2026, 3, 10, 8)) == 1

    def test_activate_records_when(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 8, 30))
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key="digest")
            assert workflow.activated_at == utc(2026, 3, 9, 8, 30)

    def test_ticks_missed_while_inactive_never_fire_on_reactivation(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 1
        with session_scope(runtime.sessions) as session:
            workflow_service.deactivate(session, workspace_id=workspace.id, key="digest",
                                        actor="test", now=utc(2026, 3, 9, 12))
            workflow_service.activate(session, workspace_id=workspace.id, key="digest",
                                      actor="test", now=utc(2026, 3, 11, 12))
        assert schedule.tick(runtime, now=utc(2026, 3, 11, 12, 1)) == 0
        assert schedule.tick(runtime, now=utc(2026, 3, 12, 8)) == 1

    def test_draft_workflows_never_fire(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6),
               activate=False)
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 10, 8)) == 0
        assert _runs(runtime) == []

    def test_inactive_workflows_never_fire(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {})
        with session_scope(runtime.sessions) as session:
            workflow_service.deactivate(session, workspace_id=workspace.id, key="digest",
                                        actor="test", now=utc(2026, 3, 9, 7))
        assert schedule.tick(runtime, now=utc(2026, 3, 10, 8)) == 0
        assert _runs(runtime) == []

    def test_other_trigger_types_never_fire(self, runtime, workspace):
        _setup(runtime, workspace.id, {"type": "manual"}, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 10, 8)) == 0

    def test_a_changed_cron_does_not_fire_its_past_tick_at_once(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 1
        # at 11:00 Berlin the schedule moves to 10:00: today's 10:00 belongs to the old one
        _setup(runtime, workspace.id, {**WEEKDAY_9_BERLIN, "cron": "0 10 * * 1-5"},
               activated=utc(2026, 3, 9, 10))
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 10, 0, 5)) == 0
        assert schedule.tick(runtime, now=utc(2026, 3, 10, 9)) == 1

    def test_editing_the_nodes_keeps_a_due_tick(self, runtime, workspace):
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        _contacts(runtime, workspace.id, {})
        edited = _definition("digest", WEEKDAY_9_BERLIN)
        edited["name"] = "Morning digest"
        with session_scope(runtime.sessions) as session:
            workflow_service.save(session, workspace_id=workspace.id, definition=edited,
                                  now=utc(2026, 3, 9, 8, 0, 1))
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8, 0, 2)) == 1


AT_DEC_1 = {"type": "schedule", "at": "2026-12-01T09:00:00", "timezone": "Europe/Berlin"}


class TestTickAt:

    def test_fires_once_when_due_and_never_again(self, runtime, workspace):
        _setup(runtime, workspace.id, AT_DEC_1, activated=utc(2026, 11, 1))
        _contacts(runtime, workspace.id, {}, {})
        assert schedule.tick(runtime, now=utc(2026, 12, 1, 7, 59, 59)) == 0
        assert schedule.tick(runtime, now=utc(2026, 12, 1, 8, 0, 1)) == 2
        assert schedule.tick(runtime, now=utc(2026, 12, 2)) == 0
        _forget_state(runtime)
        assert schedule.tick(runtime, now=utc(2027, 6, 1)) == 0
        runs = _runs(runtime)
        assert len(runs) == 2
        assert runs[0].trigger_payload == {"scheduled_for": "2026-12-01T08:00:00+00:00",
                                           "schedule": "2026-12-01T09:00:00"}

    def test_an_at_that_passed_before_activation_never_fires(self, runtime, workspace):
        _setup(runtime, workspace.id, AT_DEC_1, activated=utc(2026, 12, 2))
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 12, 3)) == 0

    def test_fires_late_after_downtime(self, runtime, workspace):
        _setup(runtime, workspace.id, AT_DEC_1, activated=utc(2026, 11, 1))
        _contacts(runtime, workspace.id, {})
        assert schedule.tick(runtime, now=utc(2026, 12, 1, 20)) == 1


class TestConcurrentTick:
    @pytest.mark.parametrize("schedulers", [2, 4])
    def test_schedulers_at_once_open_one_run_per_contact_and_tick(
            self, runtime, workspace, settings, monkeypatch, schedulers):
        monkeypatch.setattr(schedule, "BATCH", 7)  # many small transactions to interleave
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        contact_ids = _contacts(runtime, workspace.id, *({} for _ in range(40)))
        engines = [make_engine(settings.database_url) for _ in range(schedulers)]
        runtimes = [Runtime(sessions=make_sessionmaker(e), cipher=runtime.cipher)
                    for e in engines]
        # The race that matters: every scheduler has seen the tick as not yet done before
        # any of them starts enrolling it.
        planned = threading.Barrier(schedulers)
        fire = schedule._fire

        def fire_together(*args: Any, **kwargs: Any) -> schedule.Fired:
            planned.wait(timeout=30)
            return fire(*args, **kwargs)

        monkeypatch.setattr(schedule, "_fire", fire_together)
        opened: list[int] = []
        errors: list[BaseException] = []

        def run(rt: Runtime) -> None:
            try:
                opened.append(schedule.tick(rt, now=utc(2026, 3, 9, 8, 0, 1)))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(rt,)) for rt in runtimes]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            for engine in engines:
                engine.dispose()
        assert errors == []
        assert sum(opened) == 40
        runs = _runs(runtime)
        assert sorted(r.contact_id for r in runs) == sorted(contact_ids)
        monkeypatch.setattr(schedule, "_fire", fire)
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8, 0, 6)) == 0
        with session_scope(runtime.sessions) as session:
            assert session.scalar(select(func.count()).select_from(WorkflowRun)) == 40

    def test_a_run_being_opened_elsewhere_for_the_same_key_is_not_doubled(
            self, runtime, workspace, settings, is_postgres):
        # Another transaction has inserted contact 0's run for this tick but not committed:
        # the scheduler cannot see it, so only the unique constraint can stop a second one.
        _setup(runtime, workspace.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
        contact_ids = _contacts(runtime, workspace.id, {}, {}, {})
        tick = utc(2026, 3, 9, 8)
        engine = make_engine(settings.database_url)
        scheduler = Runtime(sessions=make_sessionmaker(engine), cipher=runtime.cipher)
        opened: list[int] = []
        thread = threading.Thread(target=lambda: opened.append(schedule.tick(scheduler,
                                                                             now=tick)))
        session = runtime.sessions()
        try:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key="digest")
            contact = session.get(Contact, contact_ids[0])
            first = run_service.enroll(
                session, workflow=workflow, contact=contact, trigger_type="schedule",
                event={}, now=tick, idempotency_key=schedule.idempotency_key(tick, contact.id))
            thread.start()
            if is_postgres:
                wait_until(lambda: _waiting_on_a_lock(runtime), timeout=10,
                           what="the scheduler to wait on the uncommitted key")
            session.commit()
        finally:
            session.close()
            thread.join(30)
            engine.dispose()
        assert opened == [2]
        runs = _runs(runtime)
        assert sorted(r.contact_id for r in runs) == sorted(contact_ids)
        if is_postgres:  # the constraint, not a read, turned the scheduler's insert away
            [absorbed] = [r for r in runs if r.id == first.run.id]
            assert absorbed.duplicates_ignored == 1

    def test_two_workspaces_each_get_their_own_runs(self, runtime, workspace):
        other = make_workspace(runtime, "initech")
        for ws in (workspace, other):
            _setup(runtime, ws.id, WEEKDAY_9_BERLIN, activated=utc(2026, 3, 9, 6))
            _contacts(runtime, ws.id, {}, {}, prefix=ws.slug)
        assert schedule.tick(runtime, now=utc(2026, 3, 9, 8)) == 4
