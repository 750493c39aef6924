"""Timeframe strings ("15m", "1h", "4h", "1d") and their length in minutes.

One parser for the registry, the tick emitter and the schemas, so that "is this timeframe valid"
has a single answer everywhere.
"""

from __future__ import annotations

import re

#: The accepted spelling: a positive integer without leading zero, then a unit.
TIMEFRAME_PATTERN = r"^[1-9][0-9]*[mhd]$"

_TIMEFRAME_RE = re.compile(TIMEFRAME_PATTERN)
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}


def parse_timeframe(timeframe: str) -> int:
    """Return the length of ``timeframe`` in minutes ("4h" -> 240).

    Raises ValueError naming the offending value, because a typo in a config file should be
    reported with the text the operator wrote, not with a regex failure deep in a scheduler.
    """
    if not isinstance(timeframe, str) or _TIMEFRAME_RE.fullmatch(timeframe) is None:
        raise ValueError(
            f"invalid timeframe {timeframe!r}: expected a positive integer followed by m, h or d "
            f"(pattern {TIMEFRAME_PATTERN})"
        )
    return int(timeframe[:-1]) * _UNIT_MINUTES[timeframe[-1]]


def format_timeframe(minutes: int) -> str:
    """Canonical spelling for a length in minutes (240 -> "4h"), largest whole unit first.

    Used where a timeframe is derived (e.g. resampling) so equal lengths always print the same way.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
        raise ValueError(f"invalid timeframe length {minutes!r}: expected a positive number of minutes")
    for unit in ("d", "h", "m"):
        size = _UNIT_MINUTES[unit]
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    raise AssertionError("unreachable: every integer is a multiple of one minute")
