"""When to try a failed delivery again: exponential backoff with jitter, capped."""

from __future__ import annotations

import random
from datetime import timedelta

DEFAULT_MAX_ATTEMPTS = 4
BASE = timedelta(seconds=30)
CAP = timedelta(hours=1)


def backoff(attempt_number: int, *, base: timedelta = BASE, cap: timedelta = CAP,
            retry_after: float | None = None, rng: random.Random | None = None) -> timedelta:
    """Delay before attempt `attempt_number + 1`: base · 2^(n-1), capped, with "equal
    jitter" (half fixed, half random) so retries from many runs spread out. A provider's
    Retry-After, when larger, wins."""
    exponential = min(cap, base * 2 ** max(0, attempt_number - 1))
    half = exponential / 2
    delay: timedelta = half + half * (rng or random).random()
    if retry_after is not None and retry_after > delay.total_seconds():
        delay = timedelta(seconds=min(retry_after, cap.total_seconds()))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; HTTP dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
