"""Statistics for the gates: stationary bootstrap, White's RC and Hansen's SPA on Sharpe differences.

Own code (numpy only) rather than ``arch``: neither arch nor scipy is in the environment, and the
pieces are short. The stationary bootstrap (Politis & Romano 1994) resamples blocks of geometric
length (mean ``block``) with wrap-around, which keeps the serial dependence of hourly returns;
``optimal_block_length`` chooses that mean from the data (Politis & White 2004, corrected by
Patton, Politis & White 2009) instead of a fixed guess.

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


def _autocovariances(xc: np.ndarray, max_lag: int) -> np.ndarray:
    """[max_lag + 1, K] biased autocovariances ``n^-1 sum_t xc_t xc_{t-k}`` of the centred columns.

    By FFT (zero-padded, so no wrap-around): one pass for every lag and column, where a loop over
    lags would cost ``max_lag`` passes over the [T, K] matrix.
    """
    n = xc.shape[0]
    size = 1 << (2 * n - 1).bit_length()  # a power of two >= 2n: no circular overlap
    f = np.fft.rfft(xc, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[: max_lag + 1]
    return np.asarray(acov / n)


def _flat_top(t: np.ndarray) -> np.ndarray:
    """Politis-Romano flat-top lag window: 1 up to |t| = 1/2, linear down to 0 at |t| = 1."""
    return np.clip(2.0 * (1.0 - np.abs(t)), 0.0, 1.0)


def block_lengths(m: np.ndarray) -> np.ndarray:
    """[K] Politis-White (2004) optimal mean block of the stationary bootstrap, per column of ``m``.

    With the correction of Patton, Politis & White (2009), for the mean of each column:

    * ``m_hat``: the smallest lag after which ``K_N = max(5, ceil(sqrt(log10 n)))`` consecutive
      sample autocorrelations all lie inside ``+-c sqrt(log10 n / n)``, ``c = 2`` (searched up to
      ``m_max = ceil(sqrt n) + K_N``; ``m_max`` if the correlogram never settles);
    * ``M = min(2 m_hat, m_max)`` (at least 1) and, with the flat-top window ``lambda``,
      ``G = sum_{|k|<=M} lambda(k/M) |k| gamma(k)`` and ``g(0) = sum_{|k|<=M} lambda(k/M) gamma(k)``;
    * ``D_SB = 2 g(0)^2`` and ``b_SB = (2 G^2 / D_SB)^(1/3) n^(1/3)`` (the corrected constant:
      the 2004 paper carried over an error in Lahiri's constant, corrected in 2009),

    bounded to ``[1, ceil(min(3 sqrt n, n / 3))]``. ``b_SB`` minimizes the MSE of the bootstrap
    variance of the mean; a constant column has no dependence to keep and gets 1.
    """
    x = np.asarray(m, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    k_n = max(5, math.ceil(math.sqrt(math.log10(max(n, 10)))))
    if n <= 2 * k_n:  # too short to see a correlogram settle: no block to estimate
        return np.ones(x.shape[1])
    m_max = math.ceil(math.sqrt(n)) + k_n
    b_max = math.ceil(min(3.0 * math.sqrt(n), n / 3.0))
    xc = x - x.mean(axis=0)
    max_lag = min(m_max + k_n, n - 1)
    acov = _autocovariances(xc, max_lag)
    out = np.ones(x.shape[1])
    band = 2.0 * math.sqrt(math.log10(n) / n)
    for j in range(x.shape[1]):
        g0 = acov[0, j]
        if not g0 > 0:
            continue
        inside = np.abs(acov[1:, j] / g0) < band  # inside[i] <=> lag i + 1 is negligible
        # run[i]: lags i+1 .. i+K_N all negligible; m_hat = the first such i (lags start at 1)
        run = np.asarray(np.lib.stride_tricks.sliding_window_view(inside, k_n).all(axis=1))
        hits = np.flatnonzero(run[: m_max + 1])
        m_hat = int(hits[0]) if hits.size else m_max
        big_m = min(max(2 * m_hat, 1), m_max)
        lags = np.arange(1, big_m + 1)
        lam = _flat_top(lags / big_m)
        g_big = 2.0 * float(np.sum(lam * lags * acov[1 : big_m + 1, j]))
        g_zero = g0 + 2.0 * float(np.sum(lam * acov[1 : big_m + 1, j]))
        d_sb = 2.0 * g_zero**2
        if d_sb > 0:
            out[j] = (2.0 * g_big**2 / d_sb) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    return np.clip(out, 1.0, float(b_max))


def optimal_block_length(x: np.ndarray) -> float:
    """The stationary bootstrap's mean block for ``x``: Politis-White for a series, one for a matrix.

    A 1-D ``x`` gets its own ``block_lengths`` estimate. A matrix [T, K] is resampled with *shared*
    indices (the gates compare columns on the same resamples, which keeps their cross-correlation),
    so it needs one block for all columns: the **largest** per-column estimate. Why the maximum and
    not the median: a block shorter than a column's dependence understates the variance of that
    column's Sharpe ratio, so its noise looks like an edge and the gate's p-value is too small -
    the direction a gate built to reject noise must not err in; a block longer than needed only
    costs some power (a noisier variance estimate). The estimate targets the variance of the mean;
    the Sharpe ratio also divides by a standard deviation, but at hourly Sharpe ratios near zero
    its sampling variance is dominated by the mean's (``Var(SR) ~ (1 + SR^2 / 2) / n``).
    """
    return float(np.max(block_lengths(x)))
