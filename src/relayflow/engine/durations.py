"""Durations such as `30s`, `15m`, `2h`, `3d`, `1w`, or combined: `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"([0-9]+)([smhdw])")
_WHOLE = re.compile(r"^(?:[0-9]+[smhdw])+$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX = timedelta(days=366)


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with a readable message."""
    if not isinstance(text, str) or not _WHOLE.match(text.strip()):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit, e.g. 30s, 15m, 2h, 3d"
        )
    seconds = sum(int(n) * _UNIT[u] for n, u in _PART.findall(text))
    if seconds > MAX.total_seconds():  # compare before timedelta(), which overflows on huge values
        raise ValueError(f"duration {text!r} is longer than 366 days")
    return timedelta(seconds=seconds)
