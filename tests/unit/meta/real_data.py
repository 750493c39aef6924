"""Real research inputs shared by the combiner unit tests (decide_tick vs research parity).

``test_combiner_linear``, ``test_combiner_online`` and ``test_combiner_rl`` read the same thing: the
last hours of the bundled real candles, the price strategies' answers over them, the real funding
series, and the research context built over the majority vote as ``protocol`` builds it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from common.dataset import load_bundled_candles
from common.signals import SignalArrays
from config import load_settings
from meta_consumer.decide import TickInput, signals_tick_input
from training.research.candidates import Context, build_context
from training.research.funding import FundingEvents, bar_funding, load_funding
from training.research.protocol import _baseline_exposures, funding_known
from training.signals import compute_signals, training_exogenous

PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")


def funding_events() -> FundingEvents:
    """The real funding series (BitMEX then Binance) from the shared exogenous folder."""
    return load_funding(Path(load_settings().exogenous.data_dir))


def real_inputs(hours: int) -> tuple[pd.DataFrame, SignalArrays, FundingEvents]:
    """The last ``hours`` real hours, the price strategies' answers, the funding events."""
    candles = load_bundled_candles().iloc[-hours:]
    sig = compute_signals(candles, exogenous=training_exogenous()).restricted(PRICE)
    return candles, sig, funding_events()


def vote_context(
    candles: pd.DataFrame,
    sig: SignalArrays,
    fund: np.ndarray,
    per_bar: np.ndarray | None = None,
    cost_rate: float = 0.0,
) -> Context:
    """The research context over the majority vote (the research run's baseline)."""
    return build_context(candles, sig, _baseline_exposures(sig)["majority_vote"], fund, per_bar, cost_rate)


def real_context(hours: int) -> Context:
    """The last ``hours`` real hours, the price strategies, published and per-bar funding, 10 bp cost."""
    candles, sig, events = real_inputs(hours)
    per_bar = bar_funding(sig.index, events, 1e-5).per_bar
    return vote_context(candles, sig, funding_known(sig.index, events), per_bar, 0.001)


def live_tick(
    candles: pd.DataFrame, sig: SignalArrays, fund: np.ndarray, t: int, charge: np.ndarray | None = None
) -> TickInput:
    """What the meta consumer is fed at bar ``t``'s tick: the answers, the last ``BAR_CLOSES``
    closes, the funding rate last published (``fund``) and charged over the bar (``charge``)."""
    when = pd.Timestamp(sig.index[t]).to_pydatetime() + timedelta(hours=1)
    return signals_tick_input(
        candles["close"].to_numpy(np.float64),
        sig,
        t,
        when,
        funding_last=float(fund[t]),
        funding_charge=0.0 if charge is None else float(charge[t]),
    )
