"""Durations as written in settings and CLI options."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prodflow_core.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("15m", 900), ("12h", 43_200), ("90d", 7_776_000), ("2w", 1_209_600),
     (" 1.5H ", 5400), (45, 45), (timedelta(minutes=2), 120)],
)  # fmt: skip
def test_seconds_or_a_number_with_a_unit(text: str | int | timedelta, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "d", "90 days", "-5", "5y", "1e3"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
