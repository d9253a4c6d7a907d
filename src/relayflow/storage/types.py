"""Portable column types: UTC datetimes and JSON (JSONB on PostgreSQL)."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# None is stored as SQL NULL, not as the JSON value null: a step with no request or response
# then costs a bit in the row's null bitmap instead of 9 bytes per column (PostgreSQL), and
# `IS NULL` finds it. Rows written before keep their JSON nulls; both read back as None.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python; naive UTC text on SQLite, timestamptz on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


# --- values both databases can store --------------------------------------------------

_REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with every character no column can hold replaced by U+FFFD: NUL (PostgreSQL
    refuses it in text and in JSON) and unpaired surrogates (they have no UTF-8 encoding,
    so neither driver can send them). Intake refuses both; this is for what a run makes as
    it walks (templates, captured answers, error texts), where refusing is no answer: one
    such value would fail the write of every run claimed beside it."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {(_storable_text(k) if isinstance(k, str) else k): storable(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(storable(v) for v in value)
    return value


def _storable_text(text: str) -> str:
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(_REPLACEMENT, text)


@functools.cache
def _lengths(table: Table) -> dict[str, int]:
    return {column.name: column.type.length for column in table.columns
            if isinstance(column.type, String) and column.type.length}


def fit(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """`row` with each text cut to its column's length. PostgreSQL refuses a longer value
    (SQLite would keep it), which would fail the write of every row sent with it; what a
    run made as it walked (a rendered recipient, a provider's message id) can be longer."""
    lengths = _lengths(table)
    over = {name: value[:lengths[name]] for name, value in row.items()
            if isinstance(value, str) and name in lengths and len(value) > lengths[name]}
    return {**row, **over} if over else row
