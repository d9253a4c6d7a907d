"""Request rate limits per API key and per webhook.

relayflow runs several stateless web processes against one database (DESIGN §7), so the
count lives in the database: a fixed one-minute window per subject, one atomic upsert per
request (storage/repositories/rate_counter.py). A fixed window admits at most `limit` in any
calendar minute, so at most twice that across a minute boundary; in exchange it costs one
row per subject and one statement per request, and needs no clock agreement beyond the
minute. The caller counts in its own short transaction and commits it before doing the
request's work, so a refused request is still counted and writes nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from relayflow.errors import TooManyRequests
from relayflow.storage.repositories import rate_counter as rate_counter_repo

WINDOW_SECONDS = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """One request counted against a limit: admitted or not, and what is left of the window.
    `limit` 0 means no limit (nothing was counted)."""

    admitted: bool
    limit: int
    remaining: int
    reset_after: int  # whole seconds until the window closes, 1..60

    def check(self, subject: str, *, reason: str | None = None) -> None:
        """Raise TooManyRequests (429, Retry-After) unless the request was admitted; with
        `reason`, the refusal carries it (a trigger's refusal is recorded with it)."""
        if not self.admitted:
            refused = TooManyRequests(
                f"{subject} is limited to {self.limit} requests per minute; retry in "
                f"{self.reset_after} s.", retry_after=self.reset_after)
            raise refused.because(reason) if reason else refused

    def headers(self) -> dict[str, str]:
        if self.limit <= 0:
            return {}
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                "RateLimit-Reset": str(self.reset_after)}


UNLIMITED = Admission(admitted=True, limit=0, remaining=0, reset_after=0)


def window_of(now: datetime) -> tuple[datetime, int]:
    """The start of the window holding `now`, and whole seconds until it ends (1..60)."""
    epoch = now.timestamp()
    start = math.floor(epoch / WINDOW_SECONDS) * WINDOW_SECONDS
    return datetime.fromtimestamp(start, UTC), max(1, math.ceil(start + WINDOW_SECONDS - epoch))


def count(session: Session, *, key: str, limit: int, now: datetime) -> Admission:
    """Count one request for `key` (e.g. `key:rf_1a2b3c4d`) and say whether it is admitted.
    Refused requests are counted too, so hammering past the limit never opens it early."""
    if limit <= 0:
        return UNLIMITED
    start, reset_after = window_of(now)
    hits = rate_counter_repo.hit(session, key, start)
    if hits == 1:  # a new window: the subject's older ones are no longer needed
        rate_counter_repo.delete_before(session, key, start)
    return Admission(admitted=hits <= limit, limit=limit, remaining=max(0, limit - hits),
                     reset_after=reset_after)


def prune(session: Session, *, now: datetime) -> int:
    """Forget the windows of subjects that went quiet (each keeps at most its last one)."""
    start, _ = window_of(now)
    return rate_counter_repo.delete_all_before(session, start - timedelta(hours=1))
