"""Pure arithmetic of bench/bench_peers.py: trades and final return of a long-only target series.

Every engine in the bench reports its own trade count and return; this is the bench's independent
reference for each fill model, so a difference between two engines can be split into "they traded
differently" and "they filled the same trades at different prices". numpy only: it runs in the
project's environment and in bench/.venv-peers alike, and the unit tests import it.

Conventions (those of the strategies and of ``training.ledger``): ``target[t]`` in {0, 1} is the
position decided at the close of bar ``t``; a change decided at ``t`` fills at ``fill_price[t]``:

* ``signal_close``: ``close[t]`` (the project's vectorized backtest, vectorbt, NautilusTrader on bars);
* ``next_open``: ``open[t + 1]`` (freqtrade; what live trading gets after the bar closes). A change
  decided on the last bar has no next open and is not filled.

Each fill pays ``fee`` on its notional. Two ways to put "the whole equity" in a long, and the
engines differ here (it moves the final return by a few tenths of a percent over ~135 trades):

* ``fee_inside``: the notional plus the entry fee is the equity, ``units = equity / (price * (1 + fee))``
  (vectorbt's ``size=inf``, a NautilusTrader cash account, which must cover the commission);
* ``fee_on_top``: the notional is the equity and the fee is paid on top, ``units = equity / price``
  (the project's executor at exposure 1.0, freqtrade's ``stake_amount: unlimited``).

A position still open after the last bar is marked at the last close without an exit fee.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILL_MODELS = ("signal_close", "next_open")
SIZINGS = ("fee_inside", "fee_on_top")


@dataclass(frozen=True)
class Outcome:
    trades: int  # entries (flat -> long), an open position at the end included
    final_return: float  # equity at the end / equity at the start - 1


def fill_prices(open_: np.ndarray, close: np.ndarray, model: str) -> np.ndarray:
    """The price a change decided at each bar fills at, under ``model`` (NaN: not filled)."""
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    if o.shape != c.shape:
        raise ValueError("open and close must have the same length")
    if model == "signal_close":
        return c.copy()
    if model == "next_open":
        return np.concatenate([o[1:], [np.nan]])
    raise ValueError(f"unknown fill model {model!r}; known: {', '.join(FILL_MODELS)}")


def entries_exits(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean entry and exit bars of a 0/1 target series starting flat (what vectorbt takes)."""
    t = np.asarray(target)
    if not np.isin(t, (0, 1)).all():
        raise ValueError("long-only target: every value must be 0 or 1")
    prev = np.concatenate([[0], t[:-1]])
    return (t == 1) & (prev == 0), (t == 0) & (prev == 1)


def simulate_long_only(
    target: np.ndarray, fill_price: np.ndarray, last_close: float, fee: float, sizing: str = "fee_inside"
) -> Outcome:
    """Trades and final return of ``target`` filled at ``fill_price`` with ``fee`` per fill."""
    if sizing not in SIZINGS:
        raise ValueError(f"unknown sizing {sizing!r}; known: {', '.join(SIZINGS)}")
    t = np.asarray(target)
    p = np.asarray(fill_price, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError("target and fill_price must have the same length")
    if not 0.0 <= fee < 1.0:
        raise ValueError("fee must be in [0, 1)")
    enter, leave = entries_exits(t)
    equity, units, trades = 1.0, 0.0, 0
    for i in np.flatnonzero(enter | leave):
        price = p[i]
        if not np.isfinite(price):
            continue  # the last bar's change under next_open: no bar left to fill on
        if enter[i] and units == 0.0:
            if sizing == "fee_inside":
                units, equity = equity / (price * (1.0 + fee)), 0.0
            else:  # fee_on_top: the fee leaves a (small) debt against the cash
                units, equity = equity / price, -equity * fee
            trades += 1
        elif leave[i] and units > 0.0:
            equity += units * price * (1.0 - fee)
            units = 0.0
    if units > 0.0:
        equity += units * float(last_close)
    return Outcome(trades=trades, final_return=equity - 1.0)


def close_vs_next_open(open_: np.ndarray, close: np.ndarray) -> tuple[int, int, float]:
    """(bars where ``close[t] != open[t + 1]``, bars compared, mean ``|open[t+1] / close[t] - 1|`` in bp
    over the differing bars): how far apart the two fill models can be on a dataset."""
    o = np.asarray(open_, dtype=np.float64)[1:]
    c = np.asarray(close, dtype=np.float64)[:-1]
    differ = o != c
    gap = np.abs(o[differ] / c[differ] - 1.0) * 1e4
    return int(differ.sum()), len(c), float(gap.mean()) if len(gap) else 0.0
