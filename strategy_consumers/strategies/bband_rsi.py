"""Mean reversion, long only: buy oversold RSI below the lower Bollinger band, sell overbought RSI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from strategy_consumers.strategies import indicators as ind
from strategy_consumers.strategies.base import Strategy, ohlcv_arrays
from strategy_consumers.strategies.stepping import Bar, Rsi, Stepper, Tail


class BbandRsiStepper(Stepper):
    """RSI and the typical price's Bollinger band bar by bar (see ``BbandRsi._signals``)."""

    def __init__(self, strategy: Strategy) -> None:
        super().__init__(strategy)
        p = strategy.params
        self.rsi = Rsi(int(p["rsi_period"]))
        self.window = int(p["bb_window"])
        self.typical = Tail(self.window)

    def _push(self, bar: Bar) -> dict[str, float]:
        p = self.strategy.params
        _, _, h, lo, c, _ = bar
        rsi = self.rsi.push(c)
        self.typical.push((h + lo + c) / 3)
        x = self.typical.array(self.window)
        m = len(x)  # fewer than the window at a frame's start: rolling_mean_std's min_periods=1
        mid = float(x.sum() / m)
        std = float(np.sqrt(((x - mid) ** 2).sum() / (m - 1))) if m > 1 else np.nan
        lower = mid - float(p["bb_stds"]) * std
        return {
            "rsi": rsi,
            "bb_lower": lower,
            "bb_mid": mid,
            "enter_long": float(rsi < float(p["rsi_buy"]) and c < lower),
            "exit_long": float(rsi > float(p["rsi_sell"])),
            "enter_short": 0.0,
            "exit_short": 0.0,
        }


class BbandRsi(Strategy):
    """RSI(14) < 30 and close under the 2-sigma band of the typical price enters; RSI > 70 exits."""

    name = "bband_rsi"
    default_lookback_hours = 1200
    warmup_bars = 750
    horizon_bars = 12
    default_params: ClassVar[dict[str, float]] = {
        "rsi_period": 14,
        "bb_window": 20,
        "bb_stds": 2.0,
        "rsi_buy": 30.0,
        "rsi_sell": 70.0,
    }
    indicator_columns = ("rsi", "bb_lower", "bb_mid")

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        p = self.params
        _, h, lo, c, _ = ohlcv_arrays(df)
        rsi = ind.rsi(c, int(p["rsi_period"]))
        mid, std = ind.rolling_mean_std((h + lo + c) / 3, int(p["bb_window"]))
        lower = mid - float(p["bb_stds"]) * std
        zero = np.zeros(len(df), dtype=bool)
        return {
            "rsi": rsi,
            "bb_lower": lower,
            "bb_mid": mid,
            "enter_long": (rsi < float(p["rsi_buy"])) & (c < lower),
            "exit_long": rsi > float(p["rsi_sell"]),
            "enter_short": zero,
            "exit_short": zero,
        }

    def stepper(self) -> Stepper:
        return BbandRsiStepper(self)

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # Falls linearly from 1 at RSI 30 to 0 at the RSI 70 exit: the edge is spent as RSI recovers.
        lo, hi = float(self.params["rsi_buy"]), float(self.params["rsi_sell"])
        return (hi - cols["rsi"]) / (hi - lo)
