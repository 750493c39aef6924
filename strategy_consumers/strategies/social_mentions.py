"""Social mention spikes on daily bars: fade the move that drew the crowd's attention.

Input: ``social_sentiment``, column ``stocktwits_volume`` (StockTwits messages about BTC per day,
published D+1 00:00 UTC, known at the close of that day's bar; coverage ends 2021-05-09, after
which the strategy has no opinion, "stale"). Staleness limit 48 h.

Rule (per daily bar, stateless): ``x = log(1 + mentions)``; ``z`` = its z-score against the
trailing ``window`` bars (at least ``min_count`` usable values). A spike is ``z > spike_z``.
Fade the day's price move on a spike (up day -> short, down day -> long) and hold it ``hold``
bars from the latest spike; flat otherwise.

Source: Barber & Odean (2008), "All that glitters: the effect of attention and news on the buying
behavior of individual and institutional investors", Rev. Financial Studies 21(2), and Da,
Engelberg & Gao (2011), "In search of attention", J. Finance 66(5): attention spikes bring in
retail order flow that pushes prices away from value, and the push reverses. The series counts
StockTwits messages as crawled later (deletions missing): a sample, not a census (data README).
Google Trends is left out on purpose: its daily history is stitched with later data (lookahead).
Defaults: ``window`` 60 days, ``spike_z`` 2.0, ``hold`` 2 days.
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
from strategy_consumers.strategies.rolling import latest_event_side, zscore

SERIES = "social_sentiment"


class SocialMentions(ExogenousStrategy):
    """Contrarian to the day's move for ``hold`` days after a StockTwits mention spike."""

    name = "social_mentions"
    timeframe = "1d"
    default_lookback_hours = 24 * 80
    warmup_bars = 70
    horizon_bars = 2
    default_params: ClassVar[dict[str, Any]] = {"window": 60, "min_count": 40, "spike_z": 2.0, "hold": 2}
    indicator_columns = ("mentions", "mentions_z", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {
        SERIES: ExogenousInput(
            "stocktwits_volume", max_age=pd.Timedelta(hours=48), description="StockTwits BTC messages per day"
        ),
    }

    def _check_params(self) -> None:
        p = self.params
        if int(p["window"]) + int(p["hold"]) > self.warmup_bars:
            raise ValueError(f"{self.name}: window + hold must not exceed the warm-up of {self.warmup_bars}")

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        p = self.params
        mentions = inputs[SERIES].value
        with np.errstate(invalid="ignore"):
            x = np.log1p(np.where(mentions >= 0, mentions, np.nan))
        z = zscore(x, int(p["window"]), int(p["min_count"]))
        c = df["close"].to_numpy(dtype=np.float64)
        o = df["open"].to_numpy(dtype=np.float64)
        side = np.where(c > o, -1, np.where(c < o, 1, 0))
        desired = latest_event_side(z > float(p["spike_z"]), side, int(p["hold"]))
        return {
            "mentions": mentions,
            "mentions_z": z,
            "no_opinion": np.where(np.isnan(z), WARMING, 0),
            **desired_signals(desired),
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        return np.clip(cols["mentions_z"] / float(self.params["spike_z"]), 0.5, 1.0)
