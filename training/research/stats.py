"""Statistics for the gates: stationary bootstrap, White's RC and Hansen's SPA on Sharpe differences.

Own code (numpy only) rather than ``arch``: neither arch nor scipy is in the environment, and the
pieces are short. The stationary bootstrap (Politis & Romano 1994) resamples blocks of geometric
length (mean ``block``) with wrap-around, which keeps the serial dependence of hourly returns.

Reality Check (White 2000) in its single-step form, applied to the *selected* series: with ``K``
series tried (every candidate configuration plus the procedure's choice), statistic
``d_k = SR_k - SR_bench``; under the least-favourable null every ``d_k`` is 0, so the null
distribution of the best statistic is ``max_k (d*_k - d_k)`` over bootstrap resamples. The
selected series' corrected p-value is ``P(max_k (d*_k - d_k) >= d_selected)``: small only when
its margin over the benchmark beats what the luckiest of all candidates reaches by chance.
"""

from __future__ import annotations

import math

import numpy as np

PERIODS_PER_YEAR = 24 * 365


def sharpe_cols(m: np.ndarray, periods: int = PERIODS_PER_YEAR) -> np.ndarray:
    """Annualized Sharpe of each column of ``m`` (or of each slice along axis -2); 0 where flat."""
    mean = m.mean(axis=-2)
    sd = m.std(axis=-2, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0) * math.sqrt(periods), 0.0)


def stationary_indices(n: int, reps: int, block: float, rng: np.random.Generator) -> np.ndarray:
    """[reps, n] resampled positions: blocks start anywhere, continue with probability 1 - 1/block."""
    starts = rng.integers(0, n, size=(reps, n))
    new = rng.random((reps, n)) < 1.0 / block
    new[:, 0] = True
    pos = np.arange(n)
    block_start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    first = np.take_along_axis(starts, block_start, axis=1)
    return (first + (pos - block_start)) % n


def bootstrap_sharpes(
    m: np.ndarray, *, reps: int = 500, block: float = 168.0, seed: int = 0, chunk: int = 10
) -> np.ndarray:
    """[reps, K] Sharpe ratios of the columns of ``m`` [T, K] on shared stationary resamples."""
    rng = np.random.default_rng(seed)
    out = np.empty((reps, m.shape[1]))
    for lo in range(0, reps, chunk):
        hi = min(reps, lo + chunk)
        idx = stationary_indices(m.shape[0], hi - lo, block, rng)
        out[lo:hi] = sharpe_cols(m[idx])
    return out


def reality_check(
    point: np.ndarray, boot: np.ndarray, bench: int, tried: np.ndarray, selected: int
) -> dict[str, float]:
    """Corrected p-value of ``selected`` beating column ``bench`` (see the module doc).

    ``point`` [K] and ``boot`` [reps, K]: Sharpe ratios of every column (from ``bootstrap_sharpes``);
    ``tried``: the column indices of every candidate tried (must include ``selected``).
    """
    d = point[tried] - point[bench]
    d_star = boot[:, tried] - boot[:, [bench]]
    null_max = np.max(d_star - d, axis=1)
    d_sel = point[selected] - point[bench]
    diff_sel = boot[:, selected] - boot[:, bench]
    return {
        "sharpe_diff": float(d_sel),
        "p_corrected": float((1 + np.sum(null_max >= d_sel)) / (1 + null_max.size)),
        "p_single": float((1 + np.sum(diff_sel - d_sel >= d_sel)) / (1 + diff_sel.size)),
    }


def spa_test(
    point: np.ndarray, boot: np.ndarray, bench: int, tried: np.ndarray, selected: int, n_obs: int
) -> dict[str, float]:
    """Hansen's (2005) Superior Predictive Ability test on Sharpe differences, for ``selected``.

    Same inputs as ``reality_check`` plus ``n_obs`` (the series' length). Two changes to White's
    RC make it less conservative and keep it valid: each difference is *studentized* by its
    bootstrap standard deviation ``w_k``, so a noisy candidate cannot dominate the maximum; and the
    null is recentred *consistently*: a candidate far below the benchmark (``d_k < -w_k sqrt(2 ln ln
    n)``) keeps its own negative mean in the resamples instead of being moved up to 0 as the RC's
    least-favourable null does, so adding hopeless candidates does not dilute the test.
    ``p_spa`` = share of resamples with ``max(0, max_k (d*_k - g_k) / w_k) >= d_selected / w_selected``.
    """
    d = point[tried] - point[bench]
    d_star = boot[:, tried] - boot[:, [bench]]
    w = d_star.std(axis=0, ddof=1)
    w = np.where(w > 0, w, np.inf)
    thresh = -w * math.sqrt(2.0 * math.log(max(math.log(max(n_obs, 3)), 1.0 + 1e-12)))
    g = np.where(d >= thresh, d, 0.0)  # Hansen's g_c
    t_null = np.maximum(np.max((d_star - g) / w, axis=1), 0.0)
    diff_sel = boot[:, selected] - boot[:, bench]
    w_sel = float(diff_sel.std(ddof=1))
    d_sel = float(point[selected] - point[bench])
    t_sel = d_sel / w_sel if w_sel > 0 else 0.0
    p = 1.0 if t_sel <= 0 else float((1 + np.sum(t_null >= t_sel)) / (1 + t_null.size))
    return {"t_spa": float(t_sel), "p_spa": p}
