"""When to try a failed delivery again: exponential backoff with jitter, capped, and never
sooner than a provider's Retry-After asks (up to a day).

Retry-After (RFC 9110 §10.2.3) comes in two forms, both understood: delta-seconds (`120`)
and an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`, or the obsolete RFC 850 and asctime
spellings). A date is counted from the response's own `Date` when it has one, so a provider
whose clock differs from ours is still waited for exactly as long as it asked.

A Retry-After longer than RETRY_AFTER_CAP (24 hours) is waited for 24 hours: a provider's
quota resets at least daily, a longer value is almost always an error, and a run should not
be parked for days on one answer (the next attempt may be refused again, and counts
against the attempts left).
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

DEFAULT_MAX_ATTEMPTS = 4
BASE = timedelta(seconds=30)
CAP = timedelta(hours=1)
RETRY_AFTER_CAP = timedelta(hours=24)

_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # RFC digits; a fraction is tolerated


def backoff(attempt_number: int, *, base: timedelta = BASE, cap: timedelta = CAP,
            retry_after: float | None = None, rng: random.Random | None = None) -> timedelta:
    """Delay before attempt `attempt_number + 1`: base · 2^(n-1), capped, with "equal
    jitter" (half fixed, half random) so retries from many runs spread out. A provider's
    Retry-After, when longer, wins, up to RETRY_AFTER_CAP."""
    exponential = min(cap, base * 2 ** max(0, attempt_number - 1))
    half = exponential / 2
    delay: timedelta = half + half * (rng or random).random()
    if retry_after is not None and retry_after > delay.total_seconds():
        delay = min(timedelta(seconds=retry_after), RETRY_AFTER_CAP)
    return delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds as given, or an HTTP-date
    less `now` (default: this machine's clock); a date already past is 0. None for
    anything else (no header, a negative number, garbage)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    date = http_date(text)
    if date is None:
        return None
    return max(0.0, (date - (now or datetime.now(UTC))).total_seconds())


def http_date(value: str | None) -> datetime | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime) as an aware UTC datetime, else None."""
    if not value or _DELTA_SECONDS.fullmatch(value.strip()):
        return None
    try:
        date = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)


def retry_after_seconds(value: str | None, *, date: str | None = None) -> int | None:
    """Whole seconds a response's Retry-After asks for (rounded up, so never too soon),
    an HTTP-date counted from the response's `Date` when that parses."""
    seconds = parse_retry_after(value, now=http_date(date))
    return None if seconds is None else math.ceil(seconds)
