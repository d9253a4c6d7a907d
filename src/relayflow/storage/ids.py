"""Time-ordered ids (UUIDv7): newer rows sort after older ones."""

from __future__ import annotations

import uuid

from uuid6 import uuid7


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid7().bytes)


def parse_id(text: str) -> uuid.UUID | None:
    """Parse an id from a URL or body; None if it is not one (answered as 404 upstream)."""
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
