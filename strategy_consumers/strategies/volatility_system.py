"""Volatility breakout on 3h bars: trade a 3h close-to-close move larger than 2 x ATR(14)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from strategy_consumers.strategies import indicators as ind
from strategy_consumers.strategies.base import Strategy


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

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # 1.0 when the latest 3h move in the held direction still clears the threshold, 0.5 when
        # flat, 0 when it goes against by the threshold.
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = cols["close_change"] / cols["atr_prev"]
        return 0.5 + 0.5 * np.clip(target * ratio, -1.0, 1.0)
