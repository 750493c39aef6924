"""Performance metrics of an hourly equity path, and the overfitting statistics.

Annualization uses 24 * 365 hourly bars (crypto trades around the clock). Conventions, so the
numbers are comparable across runs: returns are per-step net returns (fractions of equity before
the step); max drawdown is a positive fraction of the running peak; ratios with a zero
denominator are reported as 0.0 (JSON has no infinity). A *trade* is one exposure change (one
order); *win rate* is the share of positions (maximal runs of same-side exposure, entry to exit)
whose compounded net return, costs and funding included, was positive.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np

from training.ledger import Ledger

PERIODS_PER_YEAR = 24 * 365
EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(returns: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    r = np.asarray(returns, dtype=np.float64)
    sd = r.std(ddof=1) if r.size > 1 else 0.0
    return float(r.mean() / sd * math.sqrt(periods)) if sd > 0 else 0.0


def sortino(returns: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    r = np.asarray(returns, dtype=np.float64)
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if r.size else 0.0
    return float(r.mean() / downside * math.sqrt(periods)) if downside > 0 else 0.0


def max_drawdown(equity: np.ndarray) -> float:
    e = np.asarray(equity, dtype=np.float64)
    return float(np.max(1.0 - e / np.maximum.accumulate(e))) if e.size else 0.0


def cagr(equity: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    e = np.asarray(equity, dtype=np.float64)
    steps = e.size - 1
    if steps < 1 or e[-1] <= 0:
        return -1.0 if steps >= 1 else 0.0
    return float((e[-1] / e[0]) ** (periods / steps) - 1.0)


def position_returns(exposure: np.ndarray, net: np.ndarray) -> list[float]:
    """Compounded net return of each position (run of same-sign non-zero exposure).

    The step that closes a position (exposure back to 0, or a side flip) belongs to the position
    being closed for its cost; the closing fee is counted there.
    """
    side = np.sign(np.asarray(exposure, dtype=np.float64))
    out: list[float] = []
    cur, acc = 0.0, 1.0
    for s, r in zip(side, np.asarray(net, dtype=np.float64), strict=True):
        if s != cur:
            if cur != 0.0:
                out.append(acc - 1.0)
            cur, acc = s, 1.0
        if s != 0.0:
            acc *= 1.0 + r
        elif out and acc == 1.0 and r != 0.0:  # exit cost on the flat step after a position
            out[-1] = (1.0 + out[-1]) * (1.0 + r) - 1.0
    if cur != 0.0:
        out.append(acc - 1.0)
    return out


def summarize(ledger: Ledger, initial_exposure: float = 0.0) -> dict[str, float | int]:
    """All metrics of one ledger (1-D): the table columns of the evaluation report."""
    e, eq = ledger.exposure, ledger.equity
    prev = np.concatenate([[initial_exposure], e[:-1]])
    delta = np.abs(e - prev)
    dd = max_drawdown(eq)
    growth = cagr(eq)
    positions = position_returns(e, ledger.net)
    return {
        "total_return": float(eq[-1] - 1.0),
        "cagr": growth,
        "sharpe": sharpe(ledger.net),
        "sortino": sortino(ledger.net),
        "calmar": growth / dd if dd > 0 else 0.0,
        "max_drawdown": dd,
        "win_rate": float(np.mean([p > 0 for p in positions])) if positions else 0.0,
        "trades": int(np.count_nonzero(delta > 1e-12)),
        "turnover": float(delta.sum()),
        "fees_paid": float(np.sum(ledger.fees * eq[:-1])),
        "funding_paid": float(np.sum(ledger.funding * eq[:-1])),
        "time_in_market": float(np.mean(e != 0.0)) if e.size else 0.0,
        "bars": int(e.size),
    }


def deflated_sharpe(returns: np.ndarray, *, trials: int, sharpe_variance: float) -> float:
    """Deflated Sharpe ratio (Bailey & López de Prado, 2014): P(true SR > 0) after ``trials``.

    ``returns``: per-period returns of the selected strategy; ``sharpe_variance``: variance of the
    *per-period* (not annualized) Sharpe ratios across the trials. The benchmark SR0 is the
    expected maximum of ``trials`` draws from N(0, sharpe_variance); skew and (non-excess)
    kurtosis of the returns widen the standard error of the estimated SR.
    """
    r = np.asarray(returns, dtype=np.float64)
    n = r.size
    sd = r.std(ddof=1) if n > 1 else 0.0
    if n < 3 or sd == 0:
        return 0.0
    sr = r.mean() / sd
    z = (r - r.mean()) / r.std(ddof=0)
    skew, kurt = float(np.mean(z**3)), float(np.mean(z**4))
    if trials > 1:
        sr0 = math.sqrt(max(sharpe_variance, 0.0)) * (
            (1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / trials)
            + EULER_GAMMA * _N.inv_cdf(1 - 1 / (trials * math.e))
        )
    else:
        sr0 = 0.0
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denom <= 0:
        return 0.0
    return float(_N.cdf((sr - sr0) * math.sqrt(n - 1) / math.sqrt(denom)))


def cscv_logits(returns: np.ndarray, blocks: int = 16) -> np.ndarray:
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado, Zhu 2017).

    ``returns`` is [T, N]: N configurations side by side. Rows are cut into ``blocks`` (even)
    contiguous blocks; for every half of them as in-sample, the best in-sample configuration
    (Sharpe) is ranked out of sample on the other half; ``logit = ln(w / (1 - w))`` with
    ``w = rank / (N + 1)``. PBO = share of splits with logit <= 0 (best IS at or below OOS median).
    """
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError("returns must be [T, N] with N >= 2 configurations")
    if blocks < 2 or blocks % 2:
        raise ValueError("blocks must be an even number >= 2")
    parts = np.array_split(np.arange(m.shape[0]), blocks)
    n = m.shape[1]
    logits = []
    for is_blocks in itertools.combinations(range(blocks), blocks // 2):
        is_rows = np.concatenate([parts[b] for b in is_blocks])
        oos_rows = np.concatenate([parts[b] for b in range(blocks) if b not in is_blocks])
        best = int(np.argmax(_sharpes(m[is_rows])))
        oos = _sharpes(m[oos_rows])
        # rank 1..N of the IS winner among the OOS Sharpes, ties averaged
        rank = float(np.sum(oos < oos[best]) + 0.5 * (np.sum(oos == oos[best]) - 1) + 1)
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return np.array(logits)


def pbo_cscv(returns: np.ndarray, blocks: int = 16) -> dict[str, float]:
    """PBO summary of :func:`cscv_logits`: the share of splits with logit <= 0, their count and median."""
    arr = cscv_logits(returns, blocks)
    return {"pbo": float(np.mean(arr <= 0)), "splits": int(arr.size), "median_logit": float(np.median(arr))}


def _sharpes(m: np.ndarray) -> np.ndarray:
    sd = m.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, m.mean(axis=0) / np.where(sd > 0, sd, 1.0), 0.0)
