"""Open-interest spikes on daily bars: fade a day of unusual leverage build-up.

Input: ``open_interest_daily`` (aggregate BTC futures open interest in USD, daily, published D+1
00:00 UTC, known at the close of that day's bar; coverage from 2019-03-30). Staleness limit 48 h.

Rule (per daily bar, stateless): ``d = log(OI_t / OI_{t-1})``, the day's change in open interest;
``z`` = its z-score against the trailing ``window`` bars (at least ``min_count`` usable values). A
spike is ``z > spike_z``: new leverage entered in one day. Then fade the side that added it, read
from the day's price move: a spike on an up day (new longs) -> short, on a down day (new shorts)
-> long, each held for ``hold`` bars from the latest spike; flat otherwise.

Source: the open-interest / price matrix of futures technical analysis (rising OI with rising
price = new longs, with falling price = new shorts; e.g. Murphy 1999, "Technical Analysis of the
Financial Markets", ch. 7) and the crypto-specific observation that sudden leverage build-ups end
in liquidation cascades against the crowded side. The data set has no perp-spot basis series,
so the imbalance is read from OI. Caveat: aggregate OI is a 2024 snapshot (not point-in-time).
Defaults: ``window`` 90 days, ``spike_z`` 2.0, ``hold`` 3 days.
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
from strategy_consumers.strategies.rolling import lag, latest_event_side, zscore

SERIES = "open_interest_daily"


class OpenInterest(ExogenousStrategy):
    """Fade the side that piled into a one-day open-interest spike, for ``hold`` days."""

    name = "open_interest"
    timeframe = "1d"
    default_lookback_hours = 24 * 110
    warmup_bars = 100
    horizon_bars = 3
    default_params: ClassVar[dict[str, Any]] = {"window": 90, "min_count": 60, "spike_z": 2.0, "hold": 3}
    indicator_columns = ("oi_change", "oi_z", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {
        SERIES: ExogenousInput(
            "open_interest_usd",
            max_age=pd.Timedelta(hours=48),
            description="aggregate BTC futures open interest, USD",
        ),
    }

    def _check_params(self) -> None:
        p = self.params
        if int(p["window"]) + int(p["hold"]) + 1 > self.warmup_bars:
            raise ValueError(f"{self.name}: window + hold + 1 must not exceed the warm-up")

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        p = self.params
        oi = inputs[SERIES].value
        with np.errstate(invalid="ignore", divide="ignore"):
            change = np.log(oi / lag(oi, 1))
        change = np.where(np.isfinite(change), change, np.nan)
        z = zscore(change, int(p["window"]), int(p["min_count"]))
        c = df["close"].to_numpy(dtype=np.float64)
        o = df["open"].to_numpy(dtype=np.float64)
        side = np.where(c > o, -1, np.where(c < o, 1, 0))  # fade the side that added the leverage
        desired = latest_event_side(z > float(p["spike_z"]), side, int(p["hold"]))
        return {
            "oi_change": change,
            "oi_z": z,
            "no_opinion": np.where(np.isnan(z), WARMING, 0),
            **desired_signals(desired),
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        return np.clip(cols["oi_z"] / float(self.params["spike_z"]), 0.5, 1.0)
