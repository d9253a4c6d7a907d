"""Per-contact frequency caps: validation, the slot each message takes, and the send path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from relayflow.services import frequency as frequency_service
from relayflow.services import resend as resend_service
from relayflow.services import retention, walk
from relayflow.storage.db import session_scope
from relayflow.storage.ids import new_id
from relayflow.storage.models import DeliveryAttempt, FrequencyCount
from tests.support import smtpserver
from tests.support.flows import attempts_of, install, run_of, set_provider, start
from tests.support.leases import expire_leases
from tests.support.worker import drain

MORNING = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _flow(sends: int = 1, channel: str = "email") -> dict:
    nodes: dict = {}
    for i in range(sends):
        nodes[f"send{i}"] = {"type": "SEND_MESSAGE", "channel": channel,
                             "subject": f"Hello {i}", "body": "Hi",
                             "next": f"send{i + 1}" if i + 1 < sends else "done"}
    nodes["done"] = {"type": "END"}
    return {"key": "mail", "trigger": {"type": "manual"}, "start": "send0", "nodes": nodes}


def _cap(runtime, workspace_id, **caps) -> None:
    with session_scope(runtime.sessions) as session:
        frequency_service.put(session, workspace_id=workspace_id, caps=caps,
                              now=runtime.clock())


def _at(runtime, moment: datetime) -> None:
    runtime.clock = lambda: moment


def _contact_id(runtime, run_id):
    contact_id = run_of(runtime, run_id).contact_id
    assert contact_id is not None
    return contact_id


def _counted(runtime, workspace_id, contact_id, channel="email") -> int:
    with session_scope(runtime.sessions) as session:
        return frequency_service.counted(session, workspace_id=workspace_id,
                                         contact_id=contact_id, channel=channel,
                                         now=runtime.clock())


def _statuses(runtime) -> dict[str, int]:
    with session_scope(runtime.sessions) as session:
        return dict(session.execute(select(DeliveryAttempt.status, func.count())
                                    .group_by(DeliveryAttempt.status)).all())


class TestValidated:
    def test_keeps_caps_and_drops_nulls(self) -> None:
        assert frequency_service.validated({"sms": 2, "email": None}) == {"sms": 2}
        assert frequency_service.validated({}) == {}

    @pytest.mark.parametrize("caps", [
        {"push": 1}, {"email": 0}, {"email": 10_001}, {"email": "3"}, {"email": True},
        {"email": 1.0}, [1], None,
    ], ids=str)
    def test_refuses_unknown_channels_and_values_out_of_range(self, caps) -> None:
        with pytest.raises(frequency_service.InvalidFrequencyCaps) as caught:
            frequency_service.validated(caps)
        assert len(caught.value.problems) == 1

    def test_names_every_problem(self) -> None:
        with pytest.raises(frequency_service.InvalidFrequencyCaps) as caught:
            frequency_service.validated({"push": 1, "email": 0, "sms": 3})
        assert [p.split(":")[0] for p in caught.value.problems] == ["push", "email"]


class TestReserve:
    """The slot a message takes: one per message, never past the cap."""

    def _reserve(self, runtime, workspace, contact_id, key, **kwargs):
        return frequency_service.reserve(runtime, workspace_id=workspace.id,
                                         contact_id=contact_id, channel="email", key=key,
                                         **kwargs)

    def test_the_cap_refuses_the_next_message_and_the_same_message_counts_once(
            self, runtime, workspace) -> None:
        _at(runtime, MORNING)
        _cap(runtime, workspace.id, email=2)
        contact, first, second = new_id(), new_id(), new_id()

        assert self._reserve(runtime, workspace, contact, first) is None
        assert self._reserve(runtime, workspace, contact, first) is None  # a retry
        assert self._reserve(runtime, workspace, contact, second) is None
        refused = self._reserve(runtime, workspace, contact, new_id())

        assert refused is not None
        assert refused.error == ("not sent: frequency cap, 2 email messages per day to this "
                                 "contact reached")
        assert self._reserve(runtime, workspace, contact, second) is None  # still holds it
        assert _counted(runtime, workspace.id, contact) == 2

    def test_counts_per_contact_channel_and_workspace(self, runtime, workspace,
                                                      other_workspace) -> None:
        _cap(runtime, workspace.id, email=1, sms=1)
        _cap(runtime, other_workspace.id, email=1)
        contact = new_id()
        assert self._reserve(runtime, workspace, contact, new_id()) is None
        assert self._reserve(runtime, workspace, new_id(), new_id()) is None
        assert frequency_service.reserve(runtime, workspace_id=workspace.id, contact_id=contact,
                                         channel="sms", key=new_id()) is None
        assert self._reserve(runtime, other_workspace, contact, new_id()) is None
        assert self._reserve(runtime, workspace, contact, new_id()) is not None

    def test_uncapped_channels_and_messages_without_a_contact_are_not_counted(
            self, runtime, workspace) -> None:
        _cap(runtime, workspace.id, sms=1)
        contact = new_id()
        for _ in range(3):
            assert self._reserve(runtime, workspace, contact, new_id()) is None
            assert self._reserve(runtime, workspace, None, new_id()) is None
        assert _counted(runtime, workspace.id, contact) == 0

    def test_an_uncapped_reservation_counts_past_the_cap(self, runtime, workspace) -> None:
        _cap(runtime, workspace.id, email=1)
        contact = new_id()
        assert self._reserve(runtime, workspace, contact, new_id()) is None
        assert self._reserve(runtime, workspace, contact, new_id(), capped=False) is None
        assert _counted(runtime, workspace.id, contact) == 2
        assert self._reserve(runtime, workspace, contact, new_id()) is not None

    def test_the_count_starts_again_on_the_next_utc_day(self, runtime, workspace) -> None:
        _at(runtime, datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC))
        _cap(runtime, workspace.id, email=1)
        contact = new_id()
        assert self._reserve(runtime, workspace, contact, new_id()) is None
        assert self._reserve(runtime, workspace, contact, new_id()) is not None

        _at(runtime, datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC))

        assert self._reserve(runtime, workspace, contact, new_id()) is None
        assert _counted(runtime, workspace.id, contact) == 1

    def test_old_counts_are_forgotten(self, runtime, workspace) -> None:
        _cap(runtime, workspace.id, email=5)
        contact = new_id()
        for days_ago in (3, 1, 0):
            _at(runtime, MORNING - timedelta(days=days_ago))
            self._reserve(runtime, workspace, contact, new_id())
        with session_scope(runtime.sessions) as session:
            assert frequency_service.forget_old(session, now=MORNING) == 1
        assert _counted(runtime, workspace.id, contact) == 1

    def test_relayflow_prune_forgets_them_too(self, runtime, workspace) -> None:
        _cap(runtime, workspace.id, email=5)
        contact = new_id()
        for days_ago in (2, 0):
            _at(runtime, MORNING - timedelta(days=days_ago))
            self._reserve(runtime, workspace, contact, new_id())
        with session_scope(runtime.sessions) as session:
            assert len(list(session.scalars(select(FrequencyCount.day)))) == 2
        retention.prune(runtime, older_than="90d")
        with session_scope(runtime.sessions) as session:
            assert list(session.scalars(select(FrequencyCount.day))) == [MORNING.date()]


@pytest.fixture
def smtp(runtime, workspace):
    sink = smtpserver.start()
    set_provider(runtime, workspace.id, "email", {
        "type": "smtp", "host": "127.0.0.1", "port": sink.port, "tls": "none",
        "from": "ops@relay.test", "timeout": 5})
    runtime.delivery_retry_base_seconds = 60
    yield sink
    sink.close()


class TestSendPath:
    def test_messages_over_the_cap_are_suppressed_and_the_run_goes_on(
            self, runtime, workspace) -> None:
        _at(runtime, MORNING)
        _cap(runtime, workspace.id, email=2)
        install(runtime, workspace.id, _flow(sends=3))
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com")

        drain(runtime)

        attempts = sorted(attempts_of(runtime, run_id), key=lambda a: a.step_seq or 0)
        assert [a.status for a in attempts] == ["SENT", "SENT", "SUPPRESSED"]
        assert attempts[2].suppressed_by == "frequency_cap"
        assert attempts[2].error == ("not sent: frequency cap, 2 email messages per day to "
                                     "this contact reached")
        assert run_of(runtime, run_id).status == "COMPLETED"

    def test_a_retry_after_a_transient_failure_counts_once(self, runtime, workspace,
                                                           smtp) -> None:
        _at(runtime, MORNING)
        _cap(runtime, workspace.id, email=1)
        install(runtime, workspace.id, _flow())
        smtp.script.append("451 4.3.0 Try again later")
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com")
        drain(runtime)
        _at(runtime, MORNING + timedelta(hours=1))

        drain(runtime)

        statuses = sorted(a.status for a in attempts_of(runtime, run_id))
        assert statuses == ["FAILED", "SENT"]
        assert len(smtp.messages) == 1
        assert _counted(runtime, workspace.id, _contact_id(runtime, run_id)) == 1

    def test_a_worker_that_dies_after_taking_the_slot_leaves_it_to_the_recovery(
            self, runtime, workspace) -> None:
        _at(runtime, MORNING)
        _cap(runtime, workspace.id, email=1)
        install(runtime, workspace.id, _flow())
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com")
        [walker] = walk.claim(runtime, worker="dies", limit=1, lease_seconds=1)
        walker.walk(walk.make_child_starter(runtime))
        walk.commit(runtime, [walker])
        assert walker.in_flight is not None
        # What `_send` does first; then the worker is gone before "sending now" commits.
        assert frequency_service.reserve(
            runtime, workspace_id=workspace.id, contact_id=_contact_id(runtime, run_id),
            channel="email", key=walker.in_flight.step_id) is None
        _at(runtime, MORNING + timedelta(seconds=5))
        expire_leases(runtime)  # leases follow the database's clock, not the runtime's

        drain(runtime)

        [attempt] = attempts_of(runtime, run_id)
        assert attempt.status == "SENT"
        assert _counted(runtime, workspace.id, _contact_id(runtime, run_id)) == 1

    def test_the_next_utc_day_sends_again(self, runtime, workspace) -> None:
        _at(runtime, MORNING)
        _cap(runtime, workspace.id, email=1)
        install(runtime, workspace.id, _flow())
        start(runtime, workspace.id, "mail", email="ada@example.com")
        start(runtime, workspace.id, "mail", email="ada@example.com")
        drain(runtime)
        _at(runtime, MORNING + timedelta(days=1))
        [tomorrow] = start(runtime, workspace.id, "mail", email="ada@example.com")

        drain(runtime)

        [attempt] = attempts_of(runtime, tomorrow)
        assert attempt.status == "SENT"
        assert _statuses(runtime) == {"SENT": 2, "SUPPRESSED": 1}

    def test_a_manual_resend_is_counted_but_not_refused(self, runtime, workspace) -> None:
        _at(runtime, MORNING)
        _cap(runtime, workspace.id, email=1)
        install(runtime, workspace.id, _flow())
        [run_id] = start(runtime, workspace.id, "mail", email="ada@example.com")
        drain(runtime)
        [sent] = attempts_of(runtime, run_id)
        with session_scope(runtime.sessions) as session:
            resend_service.resend(session, workspace_id=workspace.id, attempt_id=str(sent.id),
                                  reason="asked again", override=False, actor="test",
                                  now=runtime.clock())

        assert resend_service.send_queued(runtime) == 1

        assert _statuses(runtime) == {"SENT": 2}
        assert _counted(runtime, workspace.id, _contact_id(runtime, run_id)) == 2
