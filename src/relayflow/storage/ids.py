"""Time-ordered ids (UUIDv7): newer rows sort after older ones."""

from __future__ import annotations

import random
import uuid
from datetime import datetime

from uuid6 import uuid7


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid7().bytes)


def id_at(at: datetime, rng: random.Random | None = None) -> uuid.UUID:
    """A UUIDv7 as made at `at` (a history loaded after the fact: its ids name their month,
    as the product's own do, storage/partitions.py)."""
    bits = (rng or _RANDOM).getrandbits(74)
    return uuid.UUID(int=(int(at.timestamp() * 1000) << 80) | (0x7 << 76)
                     | ((bits >> 62) << 64) | (0b10 << 62) | (bits & ((1 << 62) - 1)))


_RANDOM = random.SystemRandom()


def parse_id(text: str) -> uuid.UUID | None:
    """Parse an id from a URL or body; None if it is not one (answered as 404 upstream)."""
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
