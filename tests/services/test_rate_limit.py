"""The counting behind rate limits, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from relayflow.services import rate_limit as rate_limit_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import RateCounter

NOW = datetime(2030, 1, 1, 12, 0, 15, tzinfo=UTC)


def _count(runtime: Runtime, key: str, limit: int, now: datetime = NOW
           ) -> rate_limit_service.Admission:
    with session_scope(runtime.sessions) as session:
        return rate_limit_service.count(session, key=key, limit=limit, now=now)


def _windows(runtime: Runtime) -> list[tuple[str, datetime, int]]:
    with session_scope(runtime.sessions) as session:
        rows = session.execute(select(RateCounter.key, RateCounter.window_start,
                                      RateCounter.count).order_by(RateCounter.key))
        return [(k, w, c) for k, w, c in rows]


class TestWindowOf:
    def test_starts_on_the_minute_and_rounds_the_wait_up(self) -> None:
        start, wait = rate_limit_service.window_of(NOW.replace(microsecond=1))

        assert start == NOW.replace(second=0)
        assert wait == 45

    def test_the_first_instant_of_a_window_waits_the_whole_minute(self) -> None:
        assert rate_limit_service.window_of(NOW.replace(second=0)) == (NOW.replace(second=0), 60)


class TestCount:
    def test_admits_up_to_the_limit_then_refuses(self, runtime: Runtime) -> None:
        answers = [_count(runtime, "key:a", 3) for _ in range(5)]

        assert [a.admitted for a in answers] == [True, True, True, False, False]
        assert [a.remaining for a in answers] == [2, 1, 0, 0, 0]
        assert _windows(runtime) == [("key:a", NOW.replace(second=0), 5)]

    def test_a_new_window_forgets_the_old_one(self, runtime: Runtime) -> None:
        _count(runtime, "key:a", 3)
        _count(runtime, "key:b", 3)

        later = _count(runtime, "key:a", 3, NOW + timedelta(minutes=1))

        assert later.admitted
        assert _windows(runtime) == [("key:a", NOW.replace(second=0) + timedelta(minutes=1), 1),
                                     ("key:b", NOW.replace(second=0), 1)]

    def test_a_limit_of_zero_counts_nothing(self, runtime: Runtime) -> None:
        assert _count(runtime, "key:a", 0).admitted
        assert _windows(runtime) == []


class TestPrune:
    def test_forgets_windows_older_than_an_hour(self, runtime: Runtime) -> None:
        _count(runtime, "key:quiet", 3, NOW - timedelta(hours=2))
        _count(runtime, "key:recent", 3, NOW - timedelta(minutes=30))

        with session_scope(runtime.sessions) as session:
            removed = rate_limit_service.prune(session, now=NOW)

        assert removed == 1
        assert [k for k, _, _ in _windows(runtime)] == ["key:recent"]
