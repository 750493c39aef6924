"""Exchange inflow CDD spikes on daily bars: old coins moving to exchanges -> short for a few days.

Input: ``exchange_inflow_cdd`` (coin-days destroyed by exchange inflows, daily, published D+1 00:00
UTC, so the day's value is known at the close of that day's bar). Staleness limit 48 h (one
missing day is tolerated, no further forward fill).

Rule (per daily bar, stateless): ``x = log(1 + CDD)``; ``z`` = its z-score against the trailing
``window`` bars (the bar included; at least ``min_count`` usable values, else no opinion,
"warming"). A spike is ``z > spike_z``. Short while a spike happened within the last ``hold`` bars,
flat otherwise (``side`` = 0 makes it a flat-only risk filter that never shorts).

Source: the exchange-inflow CDD indicator (CryptoQuant's "Exchange Inflow CDD"): a burst of
long-dormant coins sent to exchanges means long-term holders prepare to sell; on-chain flows to
exchanges precede selling pressure; coin days destroyed weighs each moved coin by how long it sat
still (the measure was proposed on the Bitcointalk forum in 2011). Caveat from the data README:
the series is a 2024 snapshot of entity-labelled flows, not point-in-time.
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
from strategy_consumers.strategies.rolling import rolling_any, zscore

SERIES = "exchange_inflow_cdd"


class ExchangeInflow(ExogenousStrategy):
    """Short (or flat) for ``hold`` days after an exchange-inflow CDD spike."""

    name = "exchange_inflow"
    timeframe = "1d"
    default_lookback_hours = 24 * 110
    warmup_bars = 100
    horizon_bars = 3
    default_params: ClassVar[dict[str, Any]] = {
        "window": 90,
        "min_count": 60,
        "spike_z": 2.0,
        "hold": 3,
        "side": -1,
    }
    indicator_columns = ("cdd", "cdd_z", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {
        SERIES: ExogenousInput(
            "exchange_inflow_cdd",
            max_age=pd.Timedelta(hours=48),
            description="coin-days destroyed by exchange inflows, per day",
        ),
    }

    def _check_params(self) -> None:
        p = self.params
        if int(p["window"]) + int(p["hold"]) > self.warmup_bars:
            raise ValueError(f"{self.name}: window + hold must not exceed the warm-up of {self.warmup_bars}")
        if int(p["side"]) not in (-1, 0):
            raise ValueError(f"{self.name}: side must be -1 (short) or 0 (flat only)")

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        p = self.params
        cdd = inputs[SERIES].value
        with np.errstate(invalid="ignore"):
            x = np.log1p(np.where(cdd >= 0, cdd, np.nan))
        z = zscore(x, int(p["window"]), int(p["min_count"]))
        spike = rolling_any(z > float(p["spike_z"]), int(p["hold"]))
        desired = np.where(spike, int(p["side"]), 0)
        return {
            "cdd": cdd,
            "cdd_z": z,
            "no_opinion": np.where(np.isnan(z), WARMING, 0),
            **desired_signals(desired),
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # 1 while today's inflow is itself a spike, halving as it fades within the hold.
        return np.clip(cols["cdd_z"] / float(self.params["spike_z"]), 0.5, 1.0)
