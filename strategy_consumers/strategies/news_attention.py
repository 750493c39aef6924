"""News attention on 1h bars: in a burst of headlines, follow the price move; otherwise stay out.

Input: ``news_headlines`` (crypto news items; each usable from the full hour after its timestamp
+ 1 h, the catalog's one-bar buffer). An event series: the strategy counts items by publication
time. The feed counts as down (no opinion, "stale") after 24 h without an item; with fewer than
``min_baseline`` items in the last ``baseline_hours`` the coverage is too thin to tell a burst
from noise (no opinion, "warming": the feed has only a handful of items before 2022).

Rule (per hourly bar, stateless): ``n`` = items published in the last ``window_hours``; the
baseline rate is the items of the last ``baseline_hours`` scaled to ``window_hours``.
``attention = n / baseline``. A bar is *high attention* when ``n >= min_items`` and
``attention >= ratio``. In high attention the position follows the price move over the last
``window_hours`` bars (long if the close is above the close ``window_hours`` bars ago, short if
below); outside it the strategy is flat. ``attention`` and ``high_attention`` are published.

Source: Chan (2003), "Stock price reaction to news and no-news: drift and reversal after
headlines", J. Financial Economics 70(2): moves that come with public news drift on, moves without
news revert; Barber & Odean (2008) on attention-driven trading. Defaults: 6 h window, 7-day
baseline, ratio 2.0, at least 5 items.
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

SERIES = "news_headlines"
BASELINE_HOURS = 168


class NewsAttention(ExogenousStrategy):
    """Trade with the move only inside news bursts (headline count vs its 7-day rate)."""

    name = "news_attention"
    timeframe = "1h"
    default_lookback_hours = 48
    warmup_bars = 24
    horizon_bars = 6
    default_params: ClassVar[dict[str, Any]] = {
        "window_hours": 6,
        "baseline_hours": BASELINE_HOURS,
        "ratio": 2.0,
        "min_items": 5,
        "min_baseline": 20,
    }
    indicator_columns = ("attention", "high_attention", "news_count", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {
        SERIES: ExogenousInput(
            "title",
            kind="events",
            max_age=pd.Timedelta(hours=24),
            lookback=pd.Timedelta(hours=BASELINE_HOURS),
            description="crypto news headlines (items)",
        ),
    }

    def _check_params(self) -> None:
        p = self.params
        if not 1 <= int(p["window_hours"]) <= self.warmup_bars:
            raise ValueError(f"{self.name}: window_hours must be in [1, {self.warmup_bars}]")
        if not int(p["window_hours"]) < int(p["baseline_hours"]) <= BASELINE_HOURS:
            raise ValueError(
                f"{self.name}: need window_hours < baseline_hours <= {BASELINE_HOURS} "
                "(the reach declared for the live path)"
            )

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        p = self.params
        news = inputs[SERIES]
        w, b = int(p["window_hours"]), int(p["baseline_hours"])
        n = news.count_in(w)
        base_items = news.count_in(b)
        with np.errstate(invalid="ignore", divide="ignore"):
            attention = n / (base_items * w / b)
        attention = np.where(base_items > 0, attention, 0.0)
        high = (n >= int(p["min_items"])) & (attention >= float(p["ratio"]))
        close = df["close"].to_numpy(dtype=np.float64)
        move = np.sign(close - lag(close, w))
        desired = np.where(high, np.nan_to_num(move, nan=0.0), 0).astype(np.int64)
        thin = base_items < int(p["min_baseline"])
        return {
            "attention": attention,
            "high_attention": high.astype(np.float64),
            "news_count": n,
            "no_opinion": np.where(thin, WARMING, 0),
            **desired_signals(desired),
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # Full while the burst lasts (attention at twice the threshold or more), fading with it.
        return np.clip(cols["attention"] / (2 * float(self.params["ratio"])), 0.0, 1.0)
