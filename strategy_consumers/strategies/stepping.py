"""Incremental (O(1) per bar) twins of the price strategies' vectorized columns.

A live strategy used to recompute its last ``warmup_bars + 1`` bars on every tick (0.9-6.6 ms
per strategy here, the bulk of tick-to-intent). A :class:`Stepper` carries the recursions'
state (Wilder sums, supertrend bands and line, OTT's VAR and stops, the 3h bins) and turns one
new bar into that bar's columns with the same floating-point operations in the same order as
the vectorized code. Pushed bar by bar from a frame's first bar it therefore yields, bit for bit,
what ``Strategy._columns`` gives for that frame (tests/unit/strategies/test_stepping.py proves it
over all 37,387 bars for every stepper). Seeded from a live window's warm tail, it equals the
history from there on by ADR 0004's measured convergence, the same argument as the warm path.

Two things keep it honest in production (strategy_consumers.runner): a stepper only continues
when the new window's previous bar is the bar it stepped last (any gap, restart, replay batch
or revised candle reseeds it from the window), and every ``guard_bars`` bars the window path runs
beside it; a difference reseeds it, is logged and counted, and the window's answer is published.

Windowed sums use ``np.sum`` over the contiguous last ``w`` values: for the window lengths used
here numpy's summation order there is the same as in the sliding-window reductions (checked by
the same tests), which a running sum would not be.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from strategy_consumers.strategies.indicators import TA_EPS

if TYPE_CHECKING:
    from strategy_consumers.strategies.base import Strategy

NAN = math.nan
_HOUR_NS = 3_600_000_000_000

#: One bar as the steppers take it: open time (epoch ns), open, high, low, close, volume.
Bar = tuple[int, float, float, float, float, float]


def _max(a: float, b: float) -> float:
    """``np.maximum`` on two floats: NaN if either is NaN."""
    if a != a or b != b:
        return NAN
    return a if a >= b else b


def true_range(high: float, low: float, prev_close: float | None) -> float:
    """One TRANGE value (NaN on a frame's first bar), as ``indicators.trange``."""
    if prev_close is None:
        return NAN
    return _max(_max(high - low, abs(prev_close - high)), abs(prev_close - low))


class Tail:
    """The last ``size`` values, summed as the sliding-window reductions sum them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: deque[float] = deque(maxlen=size)

    def push(self, value: float) -> None:
        self.values.append(value)

    def sum(self, window: int) -> float:
        """Sum of the last ``window`` values (NaN until there are that many)."""
        n = len(self.values)
        if n < window:
            return NAN
        vals = list(self.values)[n - window :] if window < n else list(self.values)
        return float(np.sum(np.array(vals)))

    def array(self, window: int) -> np.ndarray:
        n = len(self.values)
        return np.array(list(self.values)[max(0, n - window) :])


class WilderAverage:
    """TA-Lib ATR/RSI smoothing of one input: left-to-right SMA seed of ``period`` values, then
    ``(prev * (period - 1) + x) / period``. NaN until seeded."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.seen = 0
        self.total = 0.0
        self.value = NAN

    def push(self, x: float) -> float:
        self.seen += 1
        if self.seen < self.period:
            self.total += x
        elif self.seen == self.period:
            self.total += x
            self.value = self.total / self.period
        else:
            self.value = (self.value * (self.period - 1) + x) / self.period
        return self.value


class Atr:
    """TA-Lib ATR over a stream of (high, low, close); NaN for the first ``period`` bars."""

    def __init__(self, period: int) -> None:
        self.prev_close: float | None = None
        self.avg = WilderAverage(period)

    def push(self, high: float, low: float, close: float) -> float:
        first = self.prev_close is None
        tr = true_range(high, low, self.prev_close)
        self.prev_close = close
        return NAN if first else self.avg.push(tr)


class Rsi:
    """TA-Lib RSI (non-Metastock) over a stream of closes."""

    def __init__(self, period: int) -> None:
        self.prev: float | None = None
        self.gain = WilderAverage(period)
        self.loss = WilderAverage(period)

    def push(self, close: float) -> float:
        prev, self.prev = self.prev, close
        if prev is None:
            return NAN
        diff = close - prev
        g = self.gain.push(0.0 if diff < 0 else diff)
        lo = self.loss.push(-diff if diff < 0 else 0.0)
        if g != g:
            return NAN
        tot = g + lo
        return 100.0 * (g / tot) if abs(tot) >= TA_EPS else 0.0


class Adx:
    """TA-Lib ADX over a stream of (high, low, close): Wilder sums of +DM/-DM/TR, DX averaged."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.prev: tuple[float, float, float] | None = None
        self.moves = 0  # bars after the first
        self.sp = self.sm = self.st = 0.0
        self.dx_seen = 0
        self.dx_total = 0.0
        self.value = NAN

    def push(self, high: float, low: float, close: float) -> float:
        prev, self.prev = self.prev, (high, low, close)
        if prev is None:
            return NAN
        ph, pl, pc = prev
        diff_p = high - ph
        diff_m = pl - low
        minus = diff_m > 0 and diff_p < diff_m
        plus = not minus and diff_p > 0 and diff_p > diff_m
        mdm = diff_m if minus else 0.0
        pdm = diff_p if plus else 0.0
        tr = true_range(high, low, pc)
        p = self.period
        self.moves += 1
        if self.moves < p:  # the seed sums over the first period - 1 moves
            self.sp += pdm
            self.sm += mdm
            self.st += tr
            return NAN
        self.sp = self.sp - self.sp / p + pdm
        self.sm = self.sm - self.sm / p + mdm
        self.st = self.st - self.st / p + tr
        valid_tr = abs(self.st) >= TA_EPS
        safe_tr = self.st if valid_tr else 1.0
        mdi = 100.0 * (self.sm / safe_tr)
        pdi = 100.0 * (self.sp / safe_tr)
        di_sum = mdi + pdi
        valid = valid_tr and abs(di_sum) >= TA_EPS
        dx = 100.0 * (abs(mdi - pdi) / di_sum) if valid else 0.0
        self.dx_seen += 1
        if self.dx_seen < p:
            self.dx_total += dx if valid else 0.0
            return NAN
        if self.dx_seen == p:
            self.dx_total += dx if valid else 0.0
            self.value = self.dx_total / p
        elif valid:
            self.value = (self.value * (p - 1) + dx) / p
        return self.value


class SupertrendLine:
    """Direction of one supertrend layer (``indicators.supertrend_direction``) bar by bar.

    The line follows the literal recursion, which the vectorized form reproduces wherever the
    bands differ and falls back to where they are equal.
    """

    def __init__(self, multiplier: float, period: int) -> None:
        self.multiplier = multiplier
        self.period = period
        self.i = -1
        self.fu = self.fl = 0.0
        self.st = 0.0
        self.fub = self.flb = 0.0

    def push(self, high: float, low: float, close: float, prev_close: float | None, tr: Tail) -> int:
        """Direction at this bar; ``tr`` already holds this bar's true range."""
        self.i += 1
        p = self.period
        if self.i < p:
            return 0
        atr = tr.sum(p) / p
        hl2 = (high + low) / 2
        bu = hl2 + self.multiplier * atr
        bl = hl2 - self.multiplier * atr
        c1 = prev_close if prev_close is not None else NAN
        if bu < self.fu or c1 > self.fu:
            self.fu = bu
        if bl > self.fl or c1 < self.fl:
            self.fl = bl
        if self.st == self.fub:
            st = self.fu if close <= self.fu else self.fl
        elif self.st == self.flb:
            st = self.fl if close >= self.fl else self.fu
        else:
            st = 0.0
        self.st, self.fub, self.flb = st, self.fu, self.fl
        if st == 0.0:
            return 0
        return -1 if close < st else 1


class Stepper(ABC):
    """Carries one strategy's state; :meth:`push` gives the next bar's raw columns.

    The columns are those of ``Strategy._raw_columns`` for the bar (the four signals as bools,
    every indicator the strategy exposes or its confidence reads), as scalars.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.last: Bar | None = None
        self.pushed = 0

    def push(self, bar: Bar) -> dict[str, float]:
        out = self._push(bar)
        self.last = bar
        self.pushed += 1
        return out

    @abstractmethod
    def _push(self, bar: Bar) -> dict[str, float]:
        """The bar's columns, updating the state."""

    def seed(self, bars: list[Bar]) -> dict[str, float]:
        """Forget the state, push every bar of a frame; the last bar's columns."""
        self.reset()
        out: dict[str, float] = {}
        for bar in bars:
            out = self.push(bar)
        return out

    def reset(self) -> None:
        type(self).__init__(self, self.strategy)  # type: ignore[misc]


def as_arrays(row: Mapping[str, float]) -> dict[str, np.ndarray]:
    """One bar's columns as one-element arrays (what the strategies' confidence code takes)."""
    return {k: np.array([v]) for k, v in row.items()}
