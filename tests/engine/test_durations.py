from __future__ import annotations

from datetime import timedelta

import pytest

from relayflow.engine.durations import parse_duration


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("30s", timedelta(seconds=30)),
            ("15m", timedelta(minutes=15)),
            ("2h", timedelta(hours=2)),
            ("3d", timedelta(days=3)),
            ("1w", timedelta(weeks=1)),
            ("1h30m", timedelta(hours=1, minutes=30)),
            ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
            ("0s", timedelta(0)),
        ],
    )
    def test_valid_duration(self, text: str, expected: timedelta) -> None:
        assert parse_duration(text) == expected

    def test_surrounding_whitespace_is_ignored(self) -> None:
        assert parse_duration(" 2h ") == timedelta(hours=2)

    def test_exactly_366_days_is_allowed(self) -> None:
        assert parse_duration("366d") == timedelta(days=366)

    @pytest.mark.parametrize(
        "text", ["", "30", "s", "2 days", "1h 30m", "1.5h", "-5m", "30x", "5M", "h1", "two hours",
                 "\u0663d", "\uff13h", "1\u09e6m"]  # Arabic-Indic, fullwidth, Bengali digits
    )
    def test_bad_format_names_the_value(self, text: str) -> None:
        with pytest.raises(ValueError, match="invalid duration") as caught:
            parse_duration(text)

        assert repr(text) in str(caught.value)

    @pytest.mark.parametrize("value", [30, 2.5, None, ["2h"]])
    def test_non_string_is_refused(self, value: object) -> None:
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(value)  # type: ignore[arg-type]

    def test_longer_than_366_days_is_refused(self) -> None:
        with pytest.raises(ValueError, match="longer than 366 days"):
            parse_duration("367d")

    @pytest.mark.parametrize("text", ["99999999999999999999d", "1000000000w"])
    def test_astronomically_long_is_refused_not_overflowed(self, text: str) -> None:
        with pytest.raises(ValueError, match="longer than 366 days"):
            parse_duration(text)
