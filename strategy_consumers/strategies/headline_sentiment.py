"""Headline sentiment on 4h bars: long when the day's crypto news turns positive, short when negative.

Input: ``news_headlines`` (``title`` of each item; usable from the full hour after its timestamp +
1 h). Each title is scored offline with VADER (Hutto & Gilbert 2014, "VADER: A Parsimonious
Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM; the maintained
``vaderSentiment`` package, whose lexicon ships inside the wheel): the ``compound`` score in
[-1, 1]. Empty titles score 0 and still count as items. The feed counts as down after 24 h
without an item (no opinion, "stale").

Rule (per 4h bar, stateless): ``s`` = mean score of the items published in the last
``window_hours``; ``base`` = mean score over the last ``baseline_hours`` (news tone has a level of
its own; what moves is the change). With fewer than ``min_items`` items in the window, or
``min_baseline`` in the baseline, no opinion ("warming"). Long when ``s - base > threshold``,
short when ``s - base < -threshold``, flat otherwise.

Source: Tetlock (2007), "Giving content to investor sentiment: the role of media in the stock
market", J. Finance 62(3) (media tone moves prices); for Bitcoin, news and social sentiment lead
short-horizon returns in several studies (e.g. Karalevicius, Degrande & De Weerdt 2018, J. Risk
Finance 19(1)). The crypto lexicon of Chen et al. (2019) in the shared data was not used: it was
fitted on messages from the backtest years (lookahead in its curation, per the data README).
Defaults: 24 h window, 7-day baseline, threshold 0.05, at least 8 items (20 for the baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
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

SERIES = "news_headlines"
BASELINE_HOURS = 168


@cache
def _analyzer() -> Any:
    # Imported on first use: loading the lexicon takes ~50 ms, price-only services never pay it.
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


_SCORES: dict[str, float] = {}
_SCORES_MAX = 200_000


def headline_score(title: object) -> float:
    """VADER compound score of one headline (memoised: a live window re-reads the same items).

    A missing or empty title (NaN, "") scores 0: the item still happened, it just says nothing.
    """
    if not isinstance(title, str):
        return 0.0
    score = _SCORES.get(title)
    if score is None:
        score = float(_analyzer().polarity_scores(title)["compound"]) if title.strip() else 0.0
        if len(_SCORES) >= _SCORES_MAX:
            _SCORES.clear()
        _SCORES[title] = score
    return score


class HeadlineSentiment(ExogenousStrategy):
    """Trade the change of headline tone (VADER) over the last day against the last week."""

    name = "headline_sentiment"
    timeframe = "4h"
    default_lookback_hours = 4 * 12
    warmup_bars = 1
    horizon_bars = 6
    default_params: ClassVar[dict[str, Any]] = {
        "window_hours": 24,
        "baseline_hours": BASELINE_HOURS,
        "threshold": 0.05,
        "min_items": 8,
        "min_baseline": 20,
    }
    indicator_columns = ("sentiment", "sentiment_base", "news_count", "no_opinion")
    exogenous_inputs: ClassVar[Mapping[str, ExogenousInput]] = {
        SERIES: ExogenousInput(
            "title",
            kind="events",
            max_age=pd.Timedelta(hours=24),
            lookback=pd.Timedelta(hours=BASELINE_HOURS),
            description="crypto news headlines (title text)",
        ),
    }

    def _check_params(self) -> None:
        p = self.params
        if not 1 <= int(p["window_hours"]) < int(p["baseline_hours"]) <= BASELINE_HOURS:
            raise ValueError(f"{self.name}: need 1 <= window_hours < baseline_hours <= {BASELINE_HOURS}")

    def _exogenous_signals(
        self, df: pd.DataFrame, inputs: Mapping[str, AlignedInput]
    ) -> dict[str, np.ndarray]:
        p = self.params
        news = inputs[SERIES]
        titles = news.items["title"].tolist() if len(news.items) else []
        scores = np.array([headline_score(t) for t in titles], dtype=np.float64)
        w, b = int(p["window_hours"]), int(p["baseline_hours"])
        n, nb = news.count_in(w), news.count_in(b)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = news.sum_in(scores, w) / n
            base = news.sum_in(scores, b) / nb
        thin = (n < int(p["min_items"])) | (nb < int(p["min_baseline"]))
        s, base = np.where(thin, np.nan, s), np.where(thin, np.nan, base)
        diff = s - base
        thr = float(p["threshold"])
        desired = np.where(diff > thr, 1, np.where(diff < -thr, -1, 0))
        return {
            "sentiment": s,
            "sentiment_base": base,
            "news_count": n,
            "no_opinion": np.where(thin, WARMING, 0),
            **desired_signals(desired),
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # Tone change in the held direction, in thresholds: 1 at twice the threshold.
        thr = max(float(self.params["threshold"]), 1e-9)
        return np.clip(target * (cols["sentiment"] - cols["sentiment_base"]) / (2 * thr), 0.0, 1.0)
