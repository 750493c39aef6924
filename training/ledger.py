"""The execution model shared by the env, the backtest and the baselines (one formula, one place).

Decision at the close of bar t (observation at t) -> new exposure ``e'`` (signed fraction of
equity, on the meta consumer's grid) held over bar t+1:

* price PnL: ``e' * (p[t+1] / p[t] - 1)`` where ``p[t]`` is the price the decision at bar t fills
  at, the execution model's ``fill_price`` (``common.fills.decision_prices``, the rule the paper
  venue and the replay comparison apply too): ``next_open`` (default, what live trading gets)
  ``p[t] = open[t+1]``, ``signal_close`` ``p[t] = close[t]``; the last bar of the window has no
  next open, so the final step ends at its close (the equity is marked there, nothing is filled);
* trading cost: ``|e' - e| * (taker_fee + slippage)``: taker fee on every fill, fixed adverse
  slippage, as in ``executor/exchanges/paper.py`` (the paper venue charges the fee on the slipped
  price: a difference of fee x slippage, 5e-8 of the notional, ignored here);
* funding: ``e' * funding_rate_hourly * hours(t -> t+1)``: longs pay when the rate is positive; the
  hours count, so a data gap charges the hours it spans;
* equity: ``equity[t+1] = equity[t] * (1 + net)``, all three terms as fractions of equity[t].

Defaults are the executor's own: ``config.ExchangeSettings`` (taker fee 0.05 %, slippage 1 bp) and
the paper venue's ``config.DEFAULT_FUNDING_RATE_HOURLY``; imported, not copied, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.fills import decision_prices
from config import DEFAULT_FUNDING_RATE_HOURLY, ExchangeSettings, FillPrice

_EXCHANGE_DEFAULTS = ExchangeSettings.model_fields
_DEFAULT_FILL_PRICE = FillPrice(_EXCHANGE_DEFAULTS["fill_price"].default)


@dataclass(frozen=True)
class CostModel:
    taker_fee: float = float(_EXCHANGE_DEFAULTS["taker_fee"].default)
    slippage_bps: float = float(_EXCHANGE_DEFAULTS["slippage_bps"].default)
    funding_rate_hourly: float = DEFAULT_FUNDING_RATE_HOURLY
    fill_price: FillPrice = _DEFAULT_FILL_PRICE

    @classmethod
    def configured(cls) -> CostModel:
        """The executor's configured costs and fill price (``BTCMETA_EXCHANGE__*``), funding default.

        What a backtest uses when it is given no costs, so that changing the execution model in
        the configuration changes the paper venue, the replay and the backtest together.
        """
        from config import get_settings

        ex = get_settings().exchange
        return cls(taker_fee=ex.taker_fee, slippage_bps=ex.slippage_bps, fill_price=ex.fill_price)

    @property
    def cost_rate(self) -> float:
        """Fraction of traded notional lost per fill (fee + slippage)."""
        return self.taker_fee + self.slippage_bps / 10_000.0


@dataclass(frozen=True)
class Ledger:
    """Per-step results of holding ``exposure[k]`` over step k (all fractions of equity before it)."""

    exposure: np.ndarray
    gross: np.ndarray
    fees: np.ndarray
    funding: np.ndarray
    net: np.ndarray
    equity: np.ndarray  # length steps + 1, starts at 1.0


def step_terms(
    prev_exposure: np.ndarray,
    new_exposure: np.ndarray,
    price_return: np.ndarray,
    hours: np.ndarray,
    costs: CostModel,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gross, fees, funding, net) of one step, vectorized over any shape."""
    gross = new_exposure * price_return
    fees = np.abs(new_exposure - prev_exposure) * costs.cost_rate
    funding = new_exposure * (costs.funding_rate_hourly * hours)
    return gross, fees, funding, gross - fees - funding


def simulate(
    exposure: np.ndarray,
    close: np.ndarray,
    hours: np.ndarray,
    costs: CostModel,
    initial_exposure: float = 0.0,
    *,
    open_: np.ndarray | None = None,
) -> Ledger:
    """Ledger of exposures decided at bars 0..n-2 of ``close`` and held over bars 1..n-1.

    ``exposure`` has length ``len(close) - 1`` (optionally a trailing config axis [n-1, C]);
    ``hours[k]`` is the time from bar k-1 to bar k (training.data.hours_between). ``open_`` (the
    bars' opens) is required by the ``next_open`` fill model: guessing it from the previous close
    is the assumption the model exists to avoid.
    """
    e = np.asarray(exposure, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    if e.shape[0] != c.shape[0] - 1:
        raise ValueError(f"need len(close) - 1 = {c.shape[0] - 1} exposures, got {e.shape[0]}")
    if open_ is None and costs.fill_price is not FillPrice.SIGNAL_CLOSE:
        raise ValueError(f"fill_price={costs.fill_price.value} needs the bars' opens (open_=...)")
    p = decision_prices(c if open_ is None else open_, c, costs.fill_price)
    ret = p[1:] / p[:-1] - 1.0
    h = np.asarray(hours, dtype=np.float64)[1:]
    if e.ndim == 2:
        ret, h = ret[:, None], h[:, None]
    prev = np.concatenate([np.full((1, *e.shape[1:]), initial_exposure), e[:-1]])
    gross, fees, funding, net = step_terms(prev, e, ret, h, costs)
    equity = np.concatenate([np.ones((1, *e.shape[1:])), np.cumprod(1.0 + net, axis=0)])
    return Ledger(e, gross, fees, funding, net, equity)
