"""Timeframe strings ("15m", "1h", "4h", "1d") and their length in minutes.

One parser for the registry, the tick emitter and the schemas, so that "is this timeframe valid"
has a single answer everywhere.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported by resample only: the registry (and CLIs' --help) import this
    import numpy as np
    import numpy.typing as npt

    IntArray = npt.NDArray[np.int64]
    FloatArray = npt.NDArray[np.float64]

#: The accepted spelling: a positive integer without leading zero, then a unit.
TIMEFRAME_PATTERN = r"^[1-9][0-9]*[mhd]$"

_TIMEFRAME_RE = re.compile(TIMEFRAME_PATTERN)
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
MINUTE_MS = 60_000


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


def resample(
    times: IntArray, values: FloatArray, base_minutes: int, timeframe_minutes: int, start_ms: int
) -> tuple[IntArray, FloatArray]:
    """Aggregate sorted base candles into complete ``timeframe_minutes`` bins aligned at ``start_ms``.

    open first, high max, low min, close last, volume sum; a bin missing any base candle is dropped.
    Here, not in the tick emitter, because the training engine must cut the same bins (one
    aggregation for live windows and historical signals).
    """
    import numpy as np

    if timeframe_minutes == base_minutes or times.size == 0:
        return times, values
    tf_ms = timeframe_minutes * MINUTE_MS
    bins = (times - start_ms) // tf_ms
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    counts = np.diff(np.append(starts, bins.size))
    ends = starts + counts - 1
    out = np.empty((starts.size, 5), dtype=np.float64)
    out[:, 0] = values[starts, 0]
    out[:, 1] = np.maximum.reduceat(values[:, 1], starts)
    out[:, 2] = np.minimum.reduceat(values[:, 2], starts)
    out[:, 3] = values[ends, 3]
    out[:, 4] = np.add.reduceat(values[:, 4], starts)
    keep = counts == timeframe_minutes // base_minutes
    return (start_ms + bins[starts] * tf_ms)[keep], out[keep]
