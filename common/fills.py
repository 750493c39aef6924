"""The fill-price model: at which price a decision taken at a bar's close trades.

Why one place: the vectorized backtest (``training.ledger``, ``training.env``), the replay
comparison (``ops.replay_compare``) and the paper venue (``executor.clock.CandlePriceFeed``) must
trade the same decision at the same price, or replay = vectorized and paper = backtest stop
holding. The model is a setting, ``config.ExchangeSettings.fill_price``
(``BTCMETA_EXCHANGE__FILL_PRICE``); see docs/decisions/0017-fill-price-model.md.

* ``next_open`` (default): the open of the bar after the signal bar, the first price after the
  decision exists. On the bundled 1h data it differs from the signal bar's close on 15,859 of
  37,386 bars (3.7 bp on average), so it is *not* the same as ``signal_close``.
* ``signal_close``: the signal bar's close (a fill in the instant the bar closes; optimistic).
* The last bar of a series has no next bar: a decision there trades at that bar's close under both
  models (the best price known; live, the next bar does not exist yet either).

Arrays here are bar-aligned (``open[t]``, ``close[t]`` of bar t); the executor applies the same rule
to timestamps: ``venue_price_at``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from config import FillPrice

__all__ = ["FillPrice", "decision_prices", "venue_price_at"]


def decision_prices(open_: npt.ArrayLike, close: npt.ArrayLike, model: FillPrice) -> npt.NDArray[np.float64]:
    """Price at which the decision taken at the close of each bar fills (same length as ``close``).

    ``next_open``: ``open[t + 1]``, and ``close[-1]`` for the last bar (no next open).
    ``signal_close``: ``close[t]``. Consecutive entries are also where one position is closed and
    the next opened, so ``p[t + 1] / p[t] - 1`` is the return of the exposure decided at bar t.
    """
    c = np.asarray(close, dtype=np.float64)
    if FillPrice(model) is FillPrice.SIGNAL_CLOSE:
        return c.copy()
    o = np.asarray(open_, dtype=np.float64)
    if o.shape != c.shape:
        raise ValueError(f"open and close differ in shape: {o.shape} vs {c.shape}")
    if c.size == 0:
        return c.copy()
    return np.append(o[1:], c[-1])


def venue_price_at(
    open_ns: npt.ArrayLike,
    open_: npt.ArrayLike,
    close: npt.ArrayLike,
    when_ns: npt.ArrayLike,
    model: FillPrice,
) -> npt.NDArray[np.float64]:
    """The venue's price for an order sent at each time ``when_ns`` (candles sorted by open time).

    A decision on bar t's close is sent at that bar's end (= the next bar's open time).
    ``next_open``: open of the first candle at/after ``when``, else the last close before it.
    ``signal_close``: close of the last candle that opened before ``when``, else (nothing before
    it) the open of the first candle. Raises ``ValueError`` with no candles: there is no price.
    """
    t = np.asarray(open_ns, dtype=np.int64)
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    w = np.asarray(when_ns, dtype=np.int64)
    if t.size == 0:
        raise ValueError("no candles to price from: import candles for the window first")
    i = np.searchsorted(t, w, side="left")
    if FillPrice(model) is FillPrice.SIGNAL_CLOSE:
        return np.where(i > 0, c[np.maximum(i - 1, 0)], o[0])
    return np.where(i < t.size, o[np.minimum(i, t.size - 1)], c[-1])
