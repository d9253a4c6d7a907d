from __future__ import annotations

import random
from datetime import timedelta

from relayflow.delivery.retry import backoff, parse_retry_after


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


class TestParseRetryAfter:
    def test_seconds(self):
        assert parse_retry_after("120") == 120.0

    def test_dates_and_garbage_are_ignored(self):
        assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
        assert parse_retry_after("") is None
        assert parse_retry_after("-5") is None
