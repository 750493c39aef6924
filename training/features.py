"""Market features and their normalization, fitted on the training window only.

The policy's observation is fixed by ``common.observation`` (the live contract): per-strategy
answers, exposure, unrealized PnL and realized volatility divided by ``FeatureSpec.vol_scale``.
``vol_scale`` is the one statistic it needs, and it is fitted here on train bars only: the rolling
volatility at bar t uses closes up to t, so values inside the train window never see later bars.

Returns and funding are also offered as normalized series (z-scores with train mean/std) for
analysis and for a future FeatureSpec version; they are not part of the v1 observation, because
the live meta consumer does not send them and a model must not be trained on inputs it will not get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.observation import FeatureSpec, rolling_volatility
from training.split import Window


@dataclass(frozen=True)
class FeatureStats:
    """Statistics fitted on one train window (stored with the model through its FeatureSpec)."""

    vol_window: int
    vol_scale: float
    ret_mean: float
    ret_std: float
    funding_rate_hourly: float

    def spec(self, strategies: tuple[str, ...], max_age_ticks: int = 24) -> FeatureSpec:
        """The FeatureSpec a model trained with these statistics declares."""
        return FeatureSpec(
            strategies=strategies,
            max_age_ticks=max_age_ticks,
            vol_window=self.vol_window,
            vol_scale=self.vol_scale,
        )


def log_returns(close: np.ndarray) -> np.ndarray:
    """Log return into each bar (NaN at bar 0): known at the bar's close, not before."""
    out = np.full(close.shape, np.nan)
    out[1:] = np.diff(np.log(close))
    return out


def fit_stats(
    close: np.ndarray, train: Window, *, vol_window: int = 24, funding_rate_hourly: float = 0.0
) -> FeatureStats:
    """Fit on ``train`` only: nothing at or after ``train.end`` is read (not even indirectly)."""
    seen = np.asarray(close[: train.end], dtype=np.float64)  # the train window and its past, no future
    vol = rolling_volatility(seen, vol_window)[train.start :]
    rets = log_returns(seen)[max(train.start, 1) :]
    vol, rets = vol[np.isfinite(vol)], rets[np.isfinite(rets)]
    if vol.size == 0 or rets.size < 2:
        raise ValueError(f"train window {train} is too short for vol_window {vol_window}")
    scale = float(np.median(vol))
    return FeatureStats(
        vol_window=vol_window,
        vol_scale=scale if scale > 0 else 1e-6,
        ret_mean=float(rets.mean()),
        ret_std=float(rets.std(ddof=1)) or 1.0,
        funding_rate_hourly=funding_rate_hourly,
    )


def market_features(close: np.ndarray, stats: FeatureStats) -> dict[str, np.ndarray]:
    """Per-bar features normalized with train statistics (causal: bar t uses closes up to t)."""
    c = np.asarray(close, dtype=np.float64)
    return {
        "volatility": rolling_volatility(c, stats.vol_window) / stats.vol_scale - 1.0,
        "returns": (log_returns(c) - stats.ret_mean) / stats.ret_std,
        "funding": np.full(c.shape, stats.funding_rate_hourly),
    }
