"""Opaque keyset cursors: the sort key of the last row of a page, base64-encoded.

A cursor is a position, not an offset, so rows inserted while someone pages never shift
what the next page holds: nothing is skipped and nothing is repeated.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime

from relayflow.errors import InvalidInput
from relayflow.storage.ids import parse_id

MAX_PAGE = 200
_BAD = "cursor is not valid; use next_cursor from a previous page"


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(_BAD) from exc


def encode_at(at: datetime, row_id: uuid.UUID) -> str:
    return _encode(f"{at.isoformat()}|{row_id}")


def decode_at(cursor: str) -> tuple[datetime, uuid.UUID]:
    at_text, _, id_text = _decode(cursor).partition("|")
    row_id = parse_id(id_text)
    try:
        at = datetime.fromisoformat(at_text)
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(_BAD) from exc
    if row_id is None:
        raise InvalidInput(_BAD)
    return at, row_id


def encode_id(row_id: uuid.UUID) -> str:
    return _encode(str(row_id))


def decode_id(cursor: str) -> uuid.UUID:
    row_id = parse_id(_decode(cursor))
    if row_id is None:
        raise InvalidInput(_BAD)
    return row_id
