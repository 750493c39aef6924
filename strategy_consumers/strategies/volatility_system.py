"""Volatility breakout on 3h bars: trade a 3h close-to-close move larger than 2 x ATR(14)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from strategy_consumers.strategies import indicators as ind
from strategy_consumers.strategies.base import Strategy
from strategy_consumers.strategies.stepping import Atr, Bar, Stepper

_HOUR_NS = 3_600_000_000_000


class VolatilityStepper(Stepper):
    """The clock-aligned bins, their ATR and close change, bar by bar.

    A bin is complete at its last hour (shown from that bar on, like the vectorized merge); a bin
    whose last hour never comes is closed by the first bar of a later bin and feeds the ATR
    recursion without being shown. Bars before the frame's first bin boundary are ignored.
    """

    def __init__(self, strategy: Strategy) -> None:
        super().__init__(strategy)
        self.bin_ns = int(strategy.params["bin_hours"]) * _HOUR_NS
        self.multiplier = float(strategy.params["atr_multiplier"])
        self.atr = Atr(int(strategy.params["atr_period"]))
        self.start: int | None = None  # first bin boundary at or after the frame's first bar
        self.bin: int | None = None  # open time of the bin being filled
        self.high = self.low = self.close = math.nan
        self.prev_bin_close: float | None = None
        self.shown_atr = self.shown_change = math.nan
        self.prev_atr = math.nan

    def _close_bin(self) -> tuple[float, float]:
        atr = self.atr.push(self.high, self.low, self.close) * self.multiplier
        change = math.nan if self.prev_bin_close is None else self.close - self.prev_bin_close
        self.prev_bin_close = self.close
        self.bin = None
        return atr, change

    def _push(self, bar: Bar) -> dict[str, float]:
        t, _, h, lo, c, _ = bar
        if self.start is None:
            self.start = -(-t // self.bin_ns) * self.bin_ns
        if t >= self.start:
            b = t - t % self.bin_ns
            if self.bin is not None and b != self.bin:
                self._close_bin()  # its last hour is missing: never shown
            if self.bin is None:
                self.bin, self.high, self.low = b, h, lo
            else:
                self.high, self.low = max(self.high, h), min(self.low, lo)
            self.close = c
            if t == b + self.bin_ns - _HOUR_NS:
                atr, change = self._close_bin()
                # ffill: a NaN cell keeps the value shown before it
                if atr == atr:
                    self.shown_atr = atr
                if change == change:
                    self.shown_change = change
        atr_prev, self.prev_atr = self.prev_atr, self.shown_atr
        change = self.shown_change
        return {
            "atr": self.shown_atr,
            "atr_prev": atr_prev,
            "close_change": change,
            "enter_long": float(change > atr_prev),
            "exit_long": float(-change > atr_prev),
            "enter_short": float(-change > atr_prev),
            "exit_short": float(change > atr_prev),
        }


class VolatilitySystem(Strategy):
    """Long when the last complete 3h move beats the previous bar's 2 x ATR, short on the mirror.

    The 3h bins are clock-aligned (00:00 UTC). A frame that starts inside a bin would see a partial
    first bin that the full history does not, so bars before the first bin boundary are ignored:
    this is what keeps a live window that starts at an arbitrary hour aligned with the history.
    """

    name = "volatility_system"
    default_lookback_hours = 3600
    warmup_bars = 2100
    horizon_bars = 3
    default_params: ClassVar[dict[str, float]] = {"atr_period": 14, "atr_multiplier": 2.0, "bin_hours": 3}
    indicator_columns = ("atr", "atr_prev", "close_change")

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        hours = int(self.params["bin_hours"])
        body = df[df.index >= df.index[0].ceil(f"{hours}h")] if len(df) else df
        bins = ind.resample_3h_last_hour(body[["open", "high", "low", "close", "volume"]], hours)
        h, lo, c = (bins[k].to_numpy(dtype=np.float64) for k in ("high", "low", "close"))
        atr = ind.atr(h, lo, c, int(self.params["atr_period"])) * float(self.params["atr_multiplier"])
        change = np.full(len(c), np.nan)
        change[1:] = c[1:] - c[:-1]
        binned = pd.DataFrame({"atr": atr, "close_change": change}, index=bins.index)
        # Reindex attaches a bin to its last hour only (a bin whose last hour is missing is never
        # shown, as in a merge on date); ffill carries it over the next two hours.
        merged = binned.reindex(df.index).ffill()
        atr_1h = merged["atr"].to_numpy()
        close_change = merged["close_change"].to_numpy()
        atr_prev = np.concatenate([[np.nan], atr_1h[:-1]])
        up = close_change > atr_prev
        down = -close_change > atr_prev
        return {
            "atr": atr_1h,
            "atr_prev": atr_prev,
            "close_change": close_change,
            "enter_long": up,
            "exit_long": down,
            "enter_short": down,
            "exit_short": up,
        }

    def stepper(self) -> Stepper:
        return VolatilityStepper(self)

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # 1.0 when the latest 3h move in the held direction still clears the threshold, 0.5 when
        # flat, 0 when it goes against by the threshold.
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = cols["close_change"] / cols["atr_prev"]
        return 0.5 + 0.5 * np.clip(target * ratio, -1.0, 1.0)
