"""Funding-rate extremes on 4h bars: fade the crowded side of the perpetual swap.

Inputs (alternatives, either is enough): BitMEX XBTUSD 8h funding (``funding_bitmex_8h``, to
2020-11) and Binance BTCUSDT 8h funding (``funding_binance_8h``, from 2020-01), both
``funding_rate`` per 8h, known at settlement. Staleness limit 16 h (one missed settlement).

Rule: per source, ``z`` = the z-score of its latest rate against its own trailing ``window`` 4h
bars (at least ``min_count`` usable values); ``z`` = the mean over the sources that have one (the
two venues run at different levels, so each is compared with its own history). Then

* enter short when ``z > entry_z`` (longs pay an extreme premium: crowded longs), exit the short
  when ``z < exit_z``;
* enter long when ``z < -entry_z`` (crowded shorts), exit the long when ``z > -exit_z``.

Source: the contrarian funding rule used by crypto derivatives desks: funding is what the
perpetual's longs pay its shorts to keep the swap near spot (the mechanism of Shiller's 1993
perpetual futures, as BitMEX implemented it in 2016; He, Manela, Ross & von Wachter 2022,
"Fundamentals of Perpetual Futures"); an extreme rate measures one-sided leveraged demand, which
tends to unwind. Defaults: ``window`` 180 bars (30 days), ``entry_z`` 2.0, ``exit_z`` 0.5.
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
)
from strategy_consumers.strategies.rolling import zscore

SOURCES = ("funding_bitmex_8h", "funding_binance_8h")


class FundingExtremes(ExogenousStrategy):
    """Contrarian to extreme funding (z-score vs each venue's trailing 30 days)."""

    name = "funding_extremes"
    timeframe = "4h"
    default_lookback_hours = 4 * 400  # warm-up 190 + measured coalescence + margin
    warmup_bars = 190
    horizon_bars = 6
    default_params: ClassVar[dict[str, Any]] = {"window": 180, "min_count": 90, "entry_z": 2.0, "exit_z": 0.5}
    indicator_columns = ("funding_z", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {
        name: ExogenousInput(
            "funding_rate",
            max_age=pd.Timedelta(hours=16),
            required=False,
            description="perpetual funding rate per 8h at settlement",
        )
        for name in SOURCES
    }

    def _check_params(self) -> None:
        p = self.params
        if int(p["window"]) > self.warmup_bars:
            raise ValueError(f"{self.name}: window exceeds the warm-up of {self.warmup_bars} bars")
        if not 0 <= float(p["exit_z"]) < float(p["entry_z"]):
            raise ValueError(f"{self.name}: need 0 <= exit_z < entry_z")

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        p = self.params
        window, min_count = int(p["window"]), int(p["min_count"])
        zs = np.vstack([zscore(inputs[s].value, window, min_count) for s in SOURCES])
        have = np.isfinite(zs)
        count = have.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(have, zs, 0.0).sum(axis=0) / count
        z = np.where(count > 0, z, np.nan)
        entry, leave = float(p["entry_z"]), float(p["exit_z"])
        return {
            "funding_z": z,
            "no_opinion": np.where(np.isnan(z), WARMING, 0),
            "enter_long": z < -entry,
            "exit_long": z > -leave,
            "enter_short": z > entry,
            "exit_short": z < leave,
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # How much of the extreme is left: 1 at the entry level, 0 at the exit level.
        entry, leave = float(self.params["entry_z"]), float(self.params["exit_z"])
        return np.clip((-target * cols["funding_z"] - leave) / (entry - leave), 0.0, 1.0)
