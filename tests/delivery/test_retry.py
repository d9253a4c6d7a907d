from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from relayflow.delivery.retry import (
    RETRY_AFTER_CAP,
    backoff,
    parse_retry_after,
    retry_after_seconds,
)


class TestBackoff:
    def test_grows_exponentially_within_its_jitter_band(self):
        rng = random.Random(1)
        for n, full in [(1, 30), (2, 60), (3, 120), (4, 240)]:
            delay = backoff(n, rng=rng).total_seconds()
            assert full / 2 <= delay <= full

    def test_is_capped(self):
        assert backoff(30, rng=random.Random(2)) <= timedelta(hours=1)

    def test_jitter_spreads_retries(self):
        delays = {backoff(3, rng=random.Random(seed)) for seed in range(20)}
        assert len(delays) > 10

    def test_a_longer_retry_after_wins(self):
        assert backoff(1, retry_after=600, rng=random.Random(3)) == timedelta(seconds=600)
        assert backoff(1, retry_after=1, rng=random.Random(3)) > timedelta(seconds=1)


class TestRetryAfterCap:
    def test_a_retry_after_beyond_the_backoff_cap_is_honoured(self):
        assert backoff(1, retry_after=7200, rng=random.Random(3)) == timedelta(hours=2)

    def test_an_absurd_retry_after_waits_a_day(self):
        delay = backoff(1, retry_after=10 * 86_400, rng=random.Random(3))

        assert delay == RETRY_AFTER_CAP == timedelta(hours=24)


NOW = datetime(2026, 10, 21, 7, 28, tzinfo=UTC)


class TestParseRetryAfter:
    def test_seconds(self):
        assert parse_retry_after("120") == 120.0
        assert parse_retry_after(" 0 ") == 0.0

    @pytest.mark.parametrize("value", [
        "Wed, 21 Oct 2026 07:30:00 GMT",       # IMF-fixdate
        "Wednesday, 21-Oct-26 07:30:00 GMT",   # RFC 850
        "Wed Oct 21 07:30:00 2026",            # asctime
    ])
    def test_http_dates_are_counted_from_now(self, value):
        assert parse_retry_after(value, now=NOW) == 120.0

    def test_a_date_already_past_is_no_wait(self):
        assert parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now=NOW) == 0.0

    def test_a_date_without_now_is_counted_from_this_machines_clock(self):
        later = datetime.now(UTC) + timedelta(seconds=90)

        seconds = parse_retry_after(format_datetime(later, usegmt=True))

        assert seconds is not None
        assert 85 <= seconds <= 90

    @pytest.mark.parametrize("value", [
        None, "", "  ", "-5", "1e3", "nan", "inf", "soon", "١٢٠", "12 s", "Wed, 99 Foo",
    ])
    def test_garbage_is_ignored(self, value):
        assert parse_retry_after(value, now=NOW) is None


class TestRetryAfterSeconds:
    def test_a_date_is_counted_from_the_responses_date_and_rounded_up(self):
        assert retry_after_seconds("Wed, 21 Oct 2026 07:30:00 GMT",
                                   date="Wed, 21 Oct 2026 07:28:00 GMT") == 120
        assert retry_after_seconds("1.2") == 2

    def test_an_unparsable_date_header_falls_back_to_this_machines_clock(self):
        later = datetime.now(UTC) + timedelta(seconds=60)

        seconds = retry_after_seconds(format_datetime(later, usegmt=True), date="garbage")

        assert seconds is not None
        assert 55 <= seconds <= 60

    def test_nothing_usable_is_none(self):
        assert retry_after_seconds(None) is None
        assert retry_after_seconds("later") is None
