"""Shared kit for the strategies of issue 15 (other timeframes, exogenous inputs): data, parity.

Not a test module. ``NEW`` lists the strategies; ``inputs()`` loads the real hourly candles and
the shared exogenous files once per process; ``check_windows_exo`` is ``parity.check_windows``
for a strategy on its own timeframe with its exogenous inputs cut as the live path cuts them
(``Strategy.cut_exogenous``: published by the window's last bar close, from its reach on).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from common.dataset import load_bundled_candles
from common.exogenous.files import load_dir
from config import load_settings
from strategy_consumers.strategies import load_strategy_class
from strategy_consumers.strategies.base import REASON, Strategy
from strategy_consumers.strategies.targets import SIGNAL_COLUMNS, event_of
from tests.unit.strategies.parity import ParityReport, _rel
from training.signals import resample_candles

REPO = Path(__file__).resolve().parents[3]

#: The strategies of issue 15 (proposed registry entries: not registered yet).
NEW: dict[str, str] = {
    "ma_trend": "strategy_consumers.strategies.ma_trend:MaTrend",
    "vwap_reversion": "strategy_consumers.strategies.vwap_reversion:VwapReversion",
    "exchange_inflow": "strategy_consumers.strategies.exchange_inflow:ExchangeInflow",
    "exchange_reserves": "strategy_consumers.strategies.exchange_reserves:ExchangeReserves",
    "funding_extremes": "strategy_consumers.strategies.funding_extremes:FundingExtremes",
    "open_interest": "strategy_consumers.strategies.open_interest:OpenInterest",
    "news_attention": "strategy_consumers.strategies.news_attention:NewsAttention",
    "headline_sentiment": "strategy_consumers.strategies.headline_sentiment:HeadlineSentiment",
    "social_mentions": "strategy_consumers.strategies.social_mentions:SocialMentions",
}
EXOGENOUS = [n for n, p in NEW.items() if load_strategy_class(p).exogenous_inputs]


def make(name: str) -> Strategy:
    return load_strategy_class(NEW[name])()


def exogenous_dir() -> Path:
    """The shared exogenous files (``BTCMETA_EXOGENOUS__DATA_DIR``, relative to the repo root)."""
    path = Path(load_settings().exogenous.data_dir)
    return path if path.is_absolute() else (REPO / path).resolve()


@cache
def inputs() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Hourly candles and every series a new strategy reads, loaded once per process."""
    names = sorted({s for p in NEW.values() for s in load_strategy_class(p).exogenous_inputs})
    return load_bundled_candles(), load_dir(exogenous_dir(), names)


@cache
def frame_of(timeframe: str) -> pd.DataFrame:
    return resample_candles(inputs()[0], timeframe)


def check_windows_exo(
    strategy: Strategy, df: pd.DataFrame, exo: dict[str, pd.DataFrame], bars: list[int] | range
) -> tuple[ParityReport, list[int]]:
    """Cold window, warm path and history at each bar t; also the no-opinion reason (2nd value)."""
    full = strategy.evaluate(df, exogenous=exo)
    sig = full[list(SIGNAL_COLUMNS)].to_numpy()
    target, event = full["target"].to_numpy(), full["event"].to_numpy()
    conf = full["confidence"].to_numpy()
    ind = full[list(strategy.indicator_columns)].to_numpy(dtype=float)
    reason = full[REASON].to_numpy() if REASON in full else None
    need = strategy.bars_needed()
    rep, reason_bad = ParityReport(), []
    for t in bars:
        window = df.iloc[max(0, t - need + 1) : t + 1]
        cut = strategy.cut_exogenous(exo, window)
        cold = strategy.evaluate(window, exogenous=cut)
        last = {c: cold[c].to_numpy()[-1] for c in cold.columns}  # plain values: fast to compare
        rep.checked += 1
        if not np.array_equal(np.array([last[c] for c in SIGNAL_COLUMNS], dtype=np.int8), sig[t]):
            rep.signal_mismatch.append(t)
        if int(last["target"]) != target[t] or last["event"] != event[t]:
            rep.cold_target_mismatch.append(t)
        if not math.isclose(float(last["confidence"]), conf[t], rel_tol=1e-9, abs_tol=1e-12):
            rep.confidence_mismatch.append(t)
        for a, b in zip([float(last[c]) for c in strategy.indicator_columns], ind[t], strict=True):
            r = _rel(float(a), float(b))
            rep.max_indicator_rel = max(rep.max_indicator_rel, r)
            rep.indicator_bits_differ += r != 0.0
        prev = int(target[t - 1]) if t > 0 else 0
        warm = strategy.recommend(window, prev_target=prev, exogenous=cut)
        if warm.target != target[t] or warm.event != event[t] or warm.event != event_of(prev, warm.target):
            rep.warm_target_mismatch.append(t)
        if reason is not None and (last[REASON] != reason[t] or warm.reason != reason[t]):
            reason_bad.append(t)
    return rep, reason_bad


def exo_window_chunk(args: tuple[str, int, int]) -> dict:
    """Every ``stride``-th bar from ``offset`` (a worker of the exhaustive test; reloads data)."""
    name, offset, stride = args
    strategy = make(name)
    df = frame_of(strategy.timeframe)
    rep, reason_bad = check_windows_exo(strategy, df, inputs()[1], range(offset, len(df), stride))
    return {
        "checked": rep.checked,
        "signal": rep.signal_mismatch,
        "cold": rep.cold_target_mismatch,
        "warm": rep.warm_target_mismatch,
        "conf": rep.confidence_mismatch,
        "bits": rep.indicator_bits_differ,
        "reason": reason_bad,
    }
