"""Mean reversion to the rolling VWAP on 4h bars: fade stretches beyond a volume-weighted band.

Rule, with ``VWAP`` the volume-weighted mean typical price ``(h + l + c) / 3`` of the last
``window`` 4h bars and ``sigma`` the volume-weighted standard deviation of the typical price around
it over the same bars:

* enter long  when ``close < VWAP - band * sigma``; exit the long when ``close >= VWAP``;
* enter short when ``close > VWAP + band * sigma``; exit the short when ``close <= VWAP``.

Windows without volume (``sum(volume) == 0``) have no VWAP and give no signal.

Source: VWAP as the volume-weighted fair price (Berkowitz, Logue & Noser 1988, "The total cost of
transactions on the NYSE", J. Finance 43(1)) and the Bollinger-band style reversion to a moving
mean (Bollinger 2001): short-horizon overreaction in crypto reverts at multi-day horizons
(e.g. the weekly reversal effect documented for many assets). Defaults: ``window`` 42 bars
(7 days), ``band`` 2.0.

Parity: VWAP and sigma are computed from each window's own bars (sliding sums), exact from bar
``window - 1`` on; the target is stateful, so the lookback adds the measured coalescence (a
crossing of the VWAP closes every position, which happens within days on the real data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from strategy_consumers.strategies.base import Strategy, ohlcv_arrays


def rolling_vwap(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Volume-weighted mean and std of the typical price over each ``window`` bars (NaN before)."""
    n = len(close)
    vwap = np.full(n, np.nan)
    sigma = np.full(n, np.nan)
    if n < window:
        return vwap, sigma
    tp = (high + low + close) / 3.0
    tpv = sliding_window_view(tp, window)
    vv = sliding_window_view(volume, window)
    vol = vv.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (tpv * vv).sum(axis=1) / vol
        var = (vv * (tpv - mean[:, None]) ** 2).sum(axis=1) / vol
    has = vol > 0
    vwap[window - 1 :] = np.where(has, mean, np.nan)
    sigma[window - 1 :] = np.where(has, np.sqrt(np.maximum(var, 0.0)), np.nan)
    return vwap, sigma


class VwapReversion(Strategy):
    """Fade 4h closes more than ``band`` volume-weighted sigmas away from the 7-day VWAP."""

    name = "vwap_reversion"
    timeframe = "4h"
    default_lookback_hours = 4 * 300  # 300 4h bars: warm-up 60 + measured coalescence + margin
    warmup_bars = 60
    horizon_bars = 6
    default_params: ClassVar[dict[str, Any]] = {"window": 42, "band": 2.0}
    indicator_columns = ("vwap", "sigma", "zscore")

    def _check_params(self) -> None:
        window = int(self.params["window"])
        if not 2 <= window <= self.warmup_bars:
            raise ValueError(f"{self.name}: window must be in [2, {self.warmup_bars}], got {window}")
        if float(self.params["band"]) <= 0:
            raise ValueError(f"{self.name}: band must be positive")

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        _, h, lo, c, v = ohlcv_arrays(df)
        vwap, sigma = rolling_vwap(h, lo, c, v, int(self.params["window"]))
        band = float(self.params["band"])
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (c - vwap) / sigma
        return {
            "vwap": vwap,
            "sigma": sigma,
            "zscore": z,
            "enter_long": c < vwap - band * sigma,
            "exit_long": c >= vwap,
            "enter_short": c > vwap + band * sigma,
            "exit_short": c <= vwap,
        }

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # The stretch left to revert, in bands: 1 at the entry band, 0 back at the VWAP.
        return np.clip(-target * cols["zscore"] / float(self.params["band"]), 0.0, 1.0)
