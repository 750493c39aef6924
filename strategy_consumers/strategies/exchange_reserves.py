"""Exchange reserves trend on daily bars: coins leaving exchanges -> long, arriving -> short.

Input: ``exchange_reserves`` (BTC held on exchange wallets, daily, published D+1 00:00 UTC, so the
day's value is known at the close of that day's bar). Staleness limit 48 h.

Rule (per daily bar, stateless): ``r = log(reserves_t / reserves_{t - days})``, the change in
reserves over the last ``days`` bars (both ends must be usable, else no opinion). Long when
``r < -threshold`` (reserves falling: net outflows, coins withdrawn to custody), short when
``r > threshold`` (net inflows: supply made ready to sell), flat in between.

Source: the exchange-reserve / exchange-netflow reading of on-chain analytics (CryptoQuant,
Glassnode): sustained net outflows from exchanges reduce the supply available to sell and have
accompanied bull phases, net inflows the opposite. The data set has reserves but no outflow series
in BTC, so the outflow side is read as the fall of reserves. Caveat from the data README: the
series is a 2024 snapshot; wallet relabelling restates history (not point-in-time).
Defaults: ``days`` 30, ``threshold`` 0.02 (2 % of reserves in a month).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from strategy_consumers.strategies.base import (
    WARMING,
    AlignedInput,
    ExogenousInput,
    ExogenousStrategy,
    desired_signals,
)
from strategy_consumers.strategies.rolling import lag

SERIES = "exchange_reserves"


class ExchangeReserves(ExogenousStrategy):
    """Long while exchange reserves fall by more than ``threshold`` over ``days``, short when they rise."""

    name = "exchange_reserves"
    timeframe = "1d"
    default_lookback_hours = 24 * 50
    warmup_bars = 40
    horizon_bars = 10
    default_params: ClassVar[dict[str, Any]] = {"days": 30, "threshold": 0.02}
    indicator_columns = ("reserves", "reserves_change", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {
        SERIES: ExogenousInput(
            "exchange_reserves", max_age=pd.Timedelta(hours=48), description="BTC held on exchange wallets"
        ),
    }

    def _check_params(self) -> None:
        if not 1 <= int(self.params["days"]) < self.warmup_bars:
            raise ValueError(f"{self.name}: days must be in [1, {self.warmup_bars})")
        if float(self.params["threshold"]) < 0:
            raise ValueError(f"{self.name}: threshold must be >= 0")

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        res = inputs[SERIES].value
        with np.errstate(invalid="ignore", divide="ignore"):
            change = np.log(res / lag(res, int(self.params["days"])))
        change = np.where(np.isfinite(change), change, np.nan)
        thr = float(self.params["threshold"])
        desired = np.where(change < -thr, 1, np.where(change > thr, -1, 0))
        return {
            "reserves": res,
            "reserves_change": change,
            "no_opinion": np.where(np.isnan(change), WARMING, 0),
            **desired_signals(desired),
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # The month's change in the held direction, in thresholds: 1 at twice the threshold.
        thr = max(float(self.params["threshold"]), 1e-9)
        return np.clip(-target * cols["reserves_change"] / (2 * thr), 0.0, 1.0)
