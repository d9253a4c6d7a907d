from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from relayflow.engine.outcome import Fail, WaitUntil
from relayflow.engine.stepper import step
from tests.engine.builders import NOW, graph_of, make_ctx


class TestStep:
    @pytest.mark.parametrize(
        ("duration", "delta"),
        [
            ("30s", timedelta(seconds=30)),
            ("15m", timedelta(minutes=15)),
            ("2h", timedelta(hours=2)),
            ("3d", timedelta(days=3)),
            ("1h30m", timedelta(hours=1, minutes=30)),
        ],
    )
    def test_duration_waits_from_now(self, duration: str, delta: timedelta) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "duration": duration, "next": "done"}})

        outcome = step(graph, "pause", make_ctx())

        assert outcome == WaitUntil(until=NOW + delta, next="done",
                                    output={"until": (NOW + delta).isoformat()})

    def test_duration_is_relative_to_the_context_clock(self) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "duration": "1d", "next": "done"}})
        later = datetime(2031, 6, 1, 8, 30, tzinfo=UTC)

        outcome = step(graph, "pause", make_ctx(now=later))

        assert isinstance(outcome, WaitUntil)
        assert outcome.until == later + timedelta(days=1)

    @pytest.mark.parametrize(
        "duration", ["2 days", "soon", "1.5h", "400d", "99999999999999999999d"]
    )
    def test_bad_duration_fails(self, duration: str) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "duration": duration, "next": "done"}})

        outcome = step(graph, "pause", make_ctx())

        assert isinstance(outcome, Fail)
        assert outcome.reason.startswith("ValueError:")
        assert repr(duration) in outcome.reason

    def test_until_template_naive_datetime_is_utc(self) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "until": "{{ event.renew_at }}", "next": "d"}})

        outcome = step(graph, "pause", make_ctx(event={"renew_at": "2030-02-01T09:15:00"}))

        assert isinstance(outcome, WaitUntil)
        assert outcome.until == datetime(2030, 2, 1, 9, 15, tzinfo=UTC)
        assert outcome.until.utcoffset() == timedelta(0)
        assert outcome.next == "d"
        assert outcome.output == {"until": "2030-02-01T09:15:00+00:00"}

    def test_until_template_with_offset_keeps_the_instant(self) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "until": " {{ event.at }} ", "next": "d"}})

        outcome = step(graph, "pause", make_ctx(event={"at": "2030-02-01T09:15:00+02:00"}))

        assert isinstance(outcome, WaitUntil)
        assert outcome.until == datetime(2030, 2, 1, 9, 15, tzinfo=timezone(timedelta(hours=2)))
        assert outcome.until == datetime(2030, 2, 1, 7, 15, tzinfo=UTC)

    def test_until_that_is_not_a_datetime_fails(self) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "until": "{{ event.at }}", "next": "d"}})

        outcome = step(graph, "pause", make_ctx(event={"at": "next tuesday"}))

        assert isinstance(outcome, Fail)
        assert outcome.reason.startswith("ValueError:")

    def test_until_with_missing_variable_fails(self) -> None:
        graph = graph_of({"pause": {"type": "WAIT", "until": "{{ event.at }}", "next": "d"}})

        outcome = step(graph, "pause", make_ctx(event={}))

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: until: 'dict object' has no attribute "
                                  "'at' in {{ event.at }}")
