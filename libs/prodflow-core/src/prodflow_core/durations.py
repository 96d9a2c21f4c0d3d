"""Durations as people write them: ``3600``, ``90s``, ``15m``, ``12h``, ``90d``, ``2w`` (settings, CLI options)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(text: str | float | timedelta) -> timedelta:
    """A duration from seconds (a number or ``"3600"``) or a number with a unit: ``s``, ``m``, ``h``, ``d``, ``w``.

    Raises ``ValueError`` for anything else (negative values included).
    """
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a duration: write seconds or a number with s, m, h, d or w (90d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower() or "s"]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {text!r}")
    return timedelta(seconds=seconds)
