"""Everything the env and the backtest read per bar, computed once from candles and signals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.observation import FeatureSpec, build_observations, rolling_volatility
from common.pnl import unrealized_pnl
from training.data import hours_between
from training.signals import SignalArrays


@dataclass(frozen=True)
class Market:
    """Aligned per-bar arrays: prices, hours since the previous bar, volatility and strategy answers."""

    spec: FeatureSpec
    index: pd.DatetimeIndex
    close: np.ndarray
    hours: np.ndarray
    volatility: np.ndarray
    signals: SignalArrays
    #: Bar opens: the ``next_open`` fill model's prices (common.fills), never an observation input.
    open: np.ndarray

    @classmethod
    def build(cls, candles: pd.DataFrame, signals: SignalArrays, spec: FeatureSpec) -> Market:
        if not candles.index.equals(signals.index):
            raise ValueError("candles and signals cover different bars")
        if tuple(spec.strategies) != tuple(signals.strategies):
            raise ValueError(f"spec strategies {spec.strategies} != signal strategies {signals.strategies}")
        close = candles["close"].to_numpy(dtype=np.float64)
        return cls(
            spec,
            signals.index,
            close,
            hours_between(signals.index),
            rolling_volatility(close, spec.vol_window),
            signals,
            candles["open"].to_numpy(dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.close)

    def observe(self, t: np.ndarray, exposure: np.ndarray, entry_price: np.ndarray) -> np.ndarray:
        """Observations at bars ``t`` for portfolios (exposure, entry price): the live builder.

        Same inputs as ``meta_consumer.decide.observe``: strategy answers of the tick, exposure
        before the decision, unrealized PnL marked at this bar's close, volatility up to this bar.
        """
        s = self.signals
        return build_observations(
            self.spec,
            targets=s.target[t],
            events=s.event[t],
            confidence=s.confidence[t],
            age=s.age[t],
            present=s.present[t],
            exposure=exposure,
            unrealized_pnl=unrealized_pnl(exposure, entry_price, self.close[t], relative=True),
            volatility=self.volatility[t],
        )
