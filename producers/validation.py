"""Pure candle validation and gap detection (no I/O, so it can be property-tested exhaustively).

Why reject instead of repair: a strategy fed an invented or corrected bar gives a signal nobody can
reproduce from the exchange's record. A refused bar leaves a visible gap, which ``find_gaps`` reports,
and the refused values are kept with their reason for audit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from common.events import from_epoch_ms, to_epoch_ms
from producers.candles import RawCandle

MINUTE_MS = 60_000


class Reason(StrEnum):
    """Why a candle was refused; stored verbatim in ``candle_rejections.reason``."""

    OFF_GRID = "off_grid"
    FUTURE = "future"
    NON_FINITE = "non_finite"
    NON_POSITIVE_PRICE = "non_positive_price"
    HIGH_BELOW_LOW = "high_below_low"
    OPEN_OUTSIDE_RANGE = "open_outside_range"
    CLOSE_OUTSIDE_RANGE = "close_outside_range"
    NEGATIVE_VOLUME = "negative_volume"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    OUT_OF_ORDER = "out_of_order"
    #: Same open time as a stored candle but other values (checked by the store, not here).
    CONFLICTS_WITH_STORED = "conflicts_with_stored"


@dataclass(frozen=True, slots=True)
class Rejection:
    candle: RawCandle
    reason: Reason


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """Accepted closed candles (strictly increasing), refusals, and bars skipped as still open."""

    accepted: tuple[RawCandle, ...]
    rejected: tuple[Rejection, ...]
    #: Bars that started but have not closed yet: not wrong, just early; the next sync takes them.
    open_bars: tuple[RawCandle, ...] = ()
    #: Exact repeats of an accepted bar (same time, same values): harmless, dropped silently.
    exact_duplicates: int = 0


def check_candle(candle: RawCandle, timeframe_ms: int, now_ms: int) -> Reason | None:
    """The first rule a single candle breaks, or None. Order: time rules, then value rules."""
    if candle.open_time_ms % timeframe_ms:
        return Reason.OFF_GRID
    if candle.open_time_ms > now_ms:
        return Reason.FUTURE
    values = candle.values()
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return Reason.NON_FINITE
    o, h, lo, c, v = values
    if min(o, h, lo, c) <= 0:
        return Reason.NON_POSITIVE_PRICE
    if h < lo:
        return Reason.HIGH_BELOW_LOW
    if not lo <= o <= h:
        return Reason.OPEN_OUTSIDE_RANGE
    if not lo <= c <= h:
        return Reason.CLOSE_OUTSIDE_RANGE
    if v < 0:
        return Reason.NEGATIVE_VOLUME
    return None


def validate_candles(candles: Iterable[RawCandle], timeframe_minutes: int, now: datetime) -> ValidationResult:
    """Split a source's batch into accepted closed candles and rejections, in arrival order.

    Sequence rules: a bar older than one already seen is ``out_of_order`` (sources page forwards,
    so this means the source is confused); two bars with the same time and different values are
    both refused (``duplicate_conflict``): we cannot know which one the exchange meant.
    """
    tf_ms = timeframe_minutes * MINUTE_MS
    now_ms = to_epoch_ms(now)
    rejected: list[Rejection] = []
    kept: dict[int, RawCandle] = {}
    conflicted: set[int] = set()
    open_bars: list[RawCandle] = []
    exact = 0
    latest = -1 << 62
    for candle in candles:
        reason = check_candle(candle, tf_ms, now_ms)
        if reason is not None:
            rejected.append(Rejection(candle, reason))
            continue
        t = candle.open_time_ms
        if t in conflicted:
            rejected.append(Rejection(candle, Reason.DUPLICATE_CONFLICT))
            continue
        if t in kept:
            if kept[t].values() == candle.values():
                exact += 1
            else:
                conflicted.add(t)
                rejected.append(Rejection(kept.pop(t), Reason.DUPLICATE_CONFLICT))
                rejected.append(Rejection(candle, Reason.DUPLICATE_CONFLICT))
            continue
        if t < latest:
            rejected.append(Rejection(candle, Reason.OUT_OF_ORDER))
            continue
        latest = t
        if t + tf_ms > now_ms:
            open_bars.append(candle)
            continue
        kept[t] = candle
    accepted = tuple(kept[t] for t in sorted(kept))
    return ValidationResult(accepted, tuple(rejected), tuple(open_bars), exact)


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing bars ``[start, end)``: ``bars`` candles should exist there and do not."""

    start: datetime
    end: datetime
    bars: int


def find_gaps(
    open_times_ms: Sequence[int],
    timeframe_minutes: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Gap]:
    """Missing ranges among sorted open times, optionally also before the first / after the last.

    ``start``/``end`` bound the range that should be fully covered (``end`` exclusive); without
    them only interior holes are reported.
    """
    tf_ms = timeframe_minutes * MINUTE_MS
    gaps: list[Gap] = []
    expected = to_epoch_ms(start) if start is not None else (open_times_ms[0] if open_times_ms else None)
    for t in open_times_ms:
        if expected is not None and t > expected:
            gaps.append(Gap(from_epoch_ms(expected), from_epoch_ms(t), (t - expected) // tf_ms))
        expected = max(expected, t + tf_ms) if expected is not None else t + tf_ms
    if end is not None and expected is not None:
        end_ms = to_epoch_ms(end)
        if end_ms > expected:
            gaps.append(Gap(from_epoch_ms(expected), end, (end_ms - expected) // tf_ms))
    return gaps
