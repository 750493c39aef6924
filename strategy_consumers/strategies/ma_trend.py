"""Moving-average trend on daily bars: long above a rising trend, short below a falling one.

Rule (per daily bar, stateless): with ``SMA_f`` the mean of the last ``fast`` closes and ``SMA_s``
of the last ``slow``, the position is

* long  when ``SMA_f > SMA_s`` and ``close > SMA_s`` (the trend is up and price is above it),
* short when ``SMA_f < SMA_s`` and ``close < SMA_s``,
* flat  otherwise (the averages and the price disagree: no trend to follow).

Source: the variable-length moving-average rules of Brock, Lakonishok & LeBaron (1992), "Simple
technical trading rules and the stochastic properties of stock returns", J. Finance 47(5) (the
1/50, 1/150, 5/150 and 1/200 day pairs; the "golden cross" is 50/200), and time-series momentum
(Moskowitz, Ooi & Pedersen 2012, J. Financial Economics 104(2)): an asset's own trend predicts its
next returns. The close filter keeps the crossover from holding a position the last price
contradicts. Defaults 20/100 days: 50/200 needs more than 200 daily bars of window, past the
default ``max_lookback_hours`` (4320 h = 180 days) of the candle store; with it raised,
``{"fast": 50, "slow": 200}`` and ``lookback_hours`` 5280 run the classic pair.

Parity: both averages are sliding-window sums (each from its own window), and the rule is
stateless, so a window agrees with the history from bar ``slow`` on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from strategy_consumers.strategies import indicators as ind
from strategy_consumers.strategies.base import Strategy, desired_signals


class MaTrend(Strategy):
    """Daily dual moving-average trend with a close filter (long / short / flat)."""

    name = "ma_trend"
    timeframe = "1d"
    default_lookback_hours = 24 * 130  # 130 daily bars: warm-up 120 + margin
    warmup_bars = 120
    horizon_bars = 5
    default_params: ClassVar[dict[str, Any]] = {"fast": 20, "slow": 100}
    indicator_columns = ("sma_fast", "sma_slow", "spread")

    def _check_params(self) -> None:
        fast, slow = int(self.params["fast"]), int(self.params["slow"])
        if not 1 <= fast < slow:
            raise ValueError(f"{self.name}: need 1 <= fast < slow, got fast={fast}, slow={slow}")
        if slow > self.warmup_bars:
            raise ValueError(f"{self.name}: slow={slow} exceeds the warm-up of {self.warmup_bars} bars")

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        close = df["close"].to_numpy(dtype=np.float64)
        fast = ind.rolling_sum(close, int(self.params["fast"])) / int(self.params["fast"])
        slow = ind.rolling_sum(close, int(self.params["slow"])) / int(self.params["slow"])
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = fast / slow - 1.0
        desired = np.where((fast > slow) & (close > slow), 1, np.where((fast < slow) & (close < slow), -1, 0))
        return {"sma_fast": fast, "sma_slow": slow, "spread": spread, **desired_signals(desired)}

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # How far the averages are apart in the held direction: 1 at a 10 % spread, 0 at a cross.
        return np.clip(target * cols["spread"] / 0.10, 0.0, 1.0)
