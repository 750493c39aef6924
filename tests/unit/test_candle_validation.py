"""Every kind of bad candle is refused with its reason; good candles always pass; gaps are found."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.events import from_epoch_ms
from producers.candles import RawCandle
from producers.validation import MINUTE_MS, Reason, find_gaps, validate_candles

NOW = datetime(2022, 8, 20, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
H = 60 * MINUTE_MS


def good(t_ms: int, price: float = 100.0) -> RawCandle:
    return RawCandle(t_ms, price, price * 1.01, price * 0.99, price * 1.005, 3.0)


T0 = NOW_MS - 10 * H


@pytest.mark.parametrize(
    ("candle", "reason"),
    [
        (RawCandle(T0 + 1, 100, 101, 99, 100, 1), Reason.OFF_GRID),
        (RawCandle(T0 + 30 * MINUTE_MS, 100, 101, 99, 100, 1), Reason.OFF_GRID),
        (RawCandle(NOW_MS + H, 100, 101, 99, 100, 1), Reason.FUTURE),
        (RawCandle(T0, math.nan, 101, 99, 100, 1), Reason.NON_FINITE),
        (RawCandle(T0, 100, math.inf, 99, 100, 1), Reason.NON_FINITE),
        (RawCandle(T0, 100, 101, 99, 100, math.nan), Reason.NON_FINITE),
        (RawCandle(T0, 0.0, 101, 99, 100, 1), Reason.NON_POSITIVE_PRICE),
        (RawCandle(T0, -5, 101, -6, 100, 1), Reason.NON_POSITIVE_PRICE),
        (RawCandle(T0, 100, 98, 99, 100, 1), Reason.HIGH_BELOW_LOW),
        (RawCandle(T0, 102, 101, 99, 100, 1), Reason.OPEN_OUTSIDE_RANGE),
        (RawCandle(T0, 100, 101, 99, 98, 1), Reason.CLOSE_OUTSIDE_RANGE),
        (RawCandle(T0, 100, 101, 99, 100, -0.5), Reason.NEGATIVE_VOLUME),
    ],
)
def test_single_candle_rules(candle: RawCandle, reason: Reason) -> None:
    result = validate_candles([good(T0 - H), candle], 60, NOW)
    assert [r.reason for r in result.rejected] == [reason]
    assert [c.open_time_ms for c in result.accepted] == [T0 - H]


def test_duplicates_conflicting_values_refused_both_identical_dropped() -> None:
    a, b = good(T0), good(T0, price=200.0)
    result = validate_candles([good(T0 - H), a, b, b, good(T0 + H)], 60, NOW)
    assert [r.reason for r in result.rejected] == [Reason.DUPLICATE_CONFLICT] * 3
    assert [c.open_time_ms for c in result.accepted] == [T0 - H, T0 + H]
    same = validate_candles([a, a], 60, NOW)
    assert same.accepted == (a,) and not same.rejected and same.exact_duplicates == 1


def test_out_of_order_refused() -> None:
    result = validate_candles([good(T0), good(T0 + H), good(T0 - H)], 60, NOW)
    assert [(r.candle.open_time_ms, r.reason) for r in result.rejected] == [(T0 - H, Reason.OUT_OF_ORDER)]


def test_open_bar_is_skipped_not_rejected() -> None:
    current = good(NOW_MS - MINUTE_MS)  # 1m bar closing exactly now: closed
    in_progress = good(NOW_MS - 0)  # opened exactly now: not closed
    result = validate_candles([current, in_progress], 1, NOW)
    assert result.accepted == (current,) and result.open_bars == (in_progress,) and not result.rejected


candles_ok = st.builds(
    lambda low, span, o, c, v: RawCandle(0, low + o * span, low + span, low, low + c * span, v),
    st.floats(0.01, 1e6),
    st.floats(0, 1e4),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 1e6),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(candles_ok, max_size=30), st.lists(st.booleans(), max_size=30))
def test_valid_sequences_fully_accepted(bars: list[RawCandle], gaps: list[bool]) -> None:
    t, out = T0 - 100 * H, []
    for i, bar in enumerate(bars):
        t += 2 * H if i < len(gaps) and gaps[i] else H
        out.append(RawCandle(t, *bar.values()))
    result = validate_candles(out, 60, NOW)
    assert result.accepted == tuple(out) and not result.rejected


MUTATIONS = {
    Reason.NON_FINITE: lambda c: RawCandle(c.open_time_ms, c.open, c.high, c.low, math.nan, c.volume),
    Reason.NON_POSITIVE_PRICE: lambda c: RawCandle(c.open_time_ms, 0.0, c.high, 0.0, c.close, c.volume),
    Reason.HIGH_BELOW_LOW: lambda c: RawCandle(c.open_time_ms, c.open, c.low / 2, c.low, c.close, c.volume),
    Reason.NEGATIVE_VOLUME: lambda c: RawCandle(c.open_time_ms, c.open, c.high, c.low, c.close, -1.0),
    Reason.OFF_GRID: lambda c: RawCandle(c.open_time_ms + 7, *c.values()),
    Reason.FUTURE: lambda c: RawCandle(NOW_MS + 5 * H, *c.values()),
}


@settings(max_examples=200, deadline=None)
@given(st.lists(candles_ok, min_size=1, max_size=20), st.data())
def test_any_mutated_candle_is_rejected_with_its_reason(bars: list[RawCandle], data: st.DataObject) -> None:
    seq = [RawCandle(T0 - (50 - i) * H, *b.values()) for i, b in enumerate(bars)]
    idx = data.draw(st.integers(0, len(seq) - 1))
    reason = data.draw(st.sampled_from(sorted(MUTATIONS)))
    seq[idx] = MUTATIONS[reason](seq[idx])
    result = validate_candles(seq, 60, NOW)
    assert [(r.candle, r.reason) for r in result.rejected] == [(seq[idx], reason)]
    assert len(result.accepted) == len(seq) - 1
    times = [c.open_time_ms for c in result.accepted]
    assert times == sorted(set(times))


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 200), max_size=200))
def test_find_gaps_covers_exactly_the_missing_bars(present: set[int]) -> None:
    start = datetime(2022, 1, 1, tzinfo=UTC)
    base = int(start.timestamp() * 1000)
    times = [base + i * H for i in sorted(present)]
    gaps = find_gaps(times, 60, start, start + timedelta(hours=201))
    missing = {int((g.start.timestamp() * 1000 - base) // H) + k for g in gaps for k in range(g.bars)}
    assert missing == set(range(201)) - present
    for g in gaps:
        assert g.end - g.start == timedelta(hours=g.bars)


def test_find_gaps_interior_only_without_bounds() -> None:
    times = [T0, T0 + H, T0 + 4 * H]
    (gap,) = find_gaps(times, 60)
    assert (gap.start, gap.end, gap.bars) == (from_epoch_ms(T0 + 2 * H), from_epoch_ms(T0 + 4 * H), 2)
