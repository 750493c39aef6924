"""Round-2 candidates of issue 16 and the hindsight oracle (numpy only; no scikit-learn in the env).

* ``metalabel``: meta-labeling (López de Prado, AFML ch. 3). The majority vote gives the side; an
  L2-logistic decides *whether to follow it*: label at ``t`` is 1 when holding the vote's side from
  ``t`` for ``horizon`` bars earned money. A training row is used only when every bar of its label
  horizon is a training bar too (``label_rows``): the label of a row next to a test block would
  read the test block's returns. Exposure ``vote`` where ``p > threshold``, flat elsewhere.
* ``dsr``: Moody & Saffell's direct reinforcement ("Learning to trade via direct reinforcement",
  2001) on the differential Sharpe ratio: a tanh trader ``F_t = tanh(w . x_t)`` over causal z-scores
  of the same features, updated online by gradient ascent on ``D_t`` after every bar. Online and
  causal like Hedge (weights at ``t`` use returns up to ``t``), so only ``rho`` is chosen; the
  initial weights are random, hence several seeds.
* ``oracle_path``: the dynamic-programming hindsight-optimal position path on the live exposure
  grid after fees, slippage and funding (an upper bound, never a candidate), and ``imitation``: a
  one-vs-rest pair of L2-logistics (long / short) trained to reproduce the oracle path computed on
  the *training* bars only.

Timing is ``candidates.net_returns``': ``e[t]`` is decided at the close of ``t``, earns
``e[t] * (ret[t+1] - funding[t+1])`` and pays ``|e[t] - e[t-1]| * cost_rate`` at bar ``t+1``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from common import combiner

LEVELS = np.linspace(-1.0, 1.0, 9)  # the meta consumer's 0.25 exposure grid


# --- shared: L2-logistic by Newton / IRLS ------------------------------------------------------


def fit_logistic(x: np.ndarray, y: np.ndarray, lam: float, iters: int = 25) -> np.ndarray:
    """Coefficients of an L2-penalized logistic regression (last column of ``x`` = unpenalized intercept)."""
    reg = lam * len(y) * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    beta = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (p - y) + reg @ beta
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(x.shape[1])
        delta = np.linalg.solve(hess, grad)
        beta -= delta
        if np.max(np.abs(delta)) < 1e-8:
            break
    return beta


def standardize(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Z-scores with the statistics of ``rows`` (the training rows) and an intercept column."""
    mu = x[rows].mean(axis=0)
    sd = x[rows].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return np.hstack([(x - mu) / sd, np.ones((x.shape[0], 1))])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return combiner.sigmoid(z)


# --- meta-labeling -----------------------------------------------------------------------------


def label_rows(train_bars: np.ndarray, n: int, horizon: int) -> np.ndarray:
    """Rows ``t`` in the training set whose label bars ``t+1 .. t+horizon`` are all training bars."""
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(train_bars)] = True
    count = np.concatenate([[0], np.cumsum(mask)])  # count[k] = training bars among 0..k-1
    t = np.flatnonzero(mask)
    t = t[t + horizon < n]
    return t[count[t + horizon + 1] - count[t + 1] == horizon]


def forward_log_return(ret: np.ndarray, horizon: int) -> np.ndarray:
    """``sum(log1p(ret[t+1 .. t+horizon]))`` per ``t`` (NaN where the horizon runs past the end)."""
    c = np.concatenate([[0.0], np.cumsum(np.log1p(ret))])
    out = np.full(ret.size, np.nan)
    n = ret.size
    out[: n - horizon] = c[horizon + 1 : n + 1] - c[1 : n - horizon + 1]
    return out


def metalabel_fit(
    features: np.ndarray,
    majority: np.ndarray,
    ret: np.ndarray,
    train_bars: np.ndarray,
    horizon: int,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, rows used). Rows: purged ``label_rows`` where the vote is not flat."""
    rows = label_rows(train_bars, ret.size, horizon)
    rows = rows[majority[rows] != 0]
    fwd = forward_log_return(ret, horizon)
    y = (majority[rows] * fwd[rows] > 0).astype(np.float64)
    x = standardize(features, rows)
    if rows.size < 10 or y.min() == y.max():
        return np.zeros(x.shape[1]), rows
    return fit_logistic(x[rows], y, lam), rows


def metalabel_model(
    features: np.ndarray,
    majority: np.ndarray,
    ret: np.ndarray,
    train_bars: np.ndarray,
    horizon: int,
    lam: float,
    names: tuple[str, ...] = (),
) -> combiner.Linear | None:
    """The fitted meta-label logistic as live parameters (None: no training row, always flat).

    ``mu`` / ``sd`` are :func:`standardize`'s statistics of the rows the fit used, so
    ``Linear.raw_score`` is the fit's ``x @ beta`` in the live decision's fixed summation order.
    """
    beta, rows = metalabel_fit(features, majority, ret, train_bars, horizon, lam)
    if rows.size == 0:
        return None
    mu = features[rows].mean(axis=0)
    sd = features[rows].std(axis=0)
    return combiner.Linear(names, mu, np.where(sd > 0, sd, 1.0), beta, 0.0, 0.0)


def metalabel_exposure(
    features: np.ndarray,
    majority: np.ndarray,
    ret: np.ndarray,
    train_bars: np.ndarray,
    horizon: int,
    lam: float,
    threshold: float,
) -> np.ndarray:
    """Follow the vote where the fitted logistic says so: ``common.combiner.metalabel_path``."""
    model = metalabel_model(features, majority, ret, train_bars, horizon, lam)
    if model is None:
        return np.zeros_like(majority)
    return combiner.metalabel_path(majority, model.raw_score(features), threshold)


# --- Moody-Saffell direct reinforcement on the differential Sharpe ratio ----------------------


#: One differential-Sharpe update, shared with the live combiner (ADR 0026).
dsr_step = combiner.dsr_step


def causal_zscore(x: np.ndarray, min_rows: int = 168) -> np.ndarray:
    """Expanding-window z-scores: row ``t`` uses rows ``0..t`` only (0 before ``min_rows``)."""
    n = x.shape[0]
    k = np.arange(1, n + 1)[:, None]
    s1 = np.cumsum(x, axis=0)
    s2 = np.cumsum(x * x, axis=0)
    mu = s1 / k
    var = np.maximum(s2 / k - mu * mu, 0.0)
    sd = np.sqrt(var)
    z = np.where(sd > 1e-12, (x - mu) / np.where(sd > 1e-12, sd, 1.0), 0.0)
    z[: min(min_rows, n)] = 0.0
    return np.clip(z, -5.0, 5.0)


def dsr_trader(
    features: np.ndarray,
    ret: np.ndarray,
    funding: np.ndarray,
    cost_rate: float,
    *,
    rho: float,
    eta: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """Continuous positions ``F_t`` in [-1, 1] of the online tanh trader (decided at the close of ``t``).

    At the close of ``t`` the trader sees ``R_t = F_{t-1} ret_t - c |F_{t-1} - F_{t-2}| - F_{t-1} f_t``,
    moves ``w`` along ``dD_t/dR_t * dR_t/dw`` (``dF/dw`` of the two positions in ``R_t`` kept from
    when they were set, the usual truncation of the recurrent gradient), then sets ``F_t``.
    Each bar is ``common.combiner.dsr_update`` (its causal z-score an increment of the expanding
    sums), the live combiner's step (ADR 0026); :func:`dsr_run` also returns the final state.
    """
    return dsr_run(features, ret, funding, cost_rate, rho=rho, eta=eta, seed=seed)[0]


def dsr_start(n_features: int, seed: int) -> combiner.DsrState:
    """The trader before its first bar: weights ``N(0, 0.1)`` from ``seed`` (features + bias)."""
    rng = np.random.default_rng(seed)
    return combiner.DsrState.start(rng.normal(0.0, 0.1, size=n_features + 1))


def dsr_run(
    features: np.ndarray,
    ret: np.ndarray,
    funding: np.ndarray,
    cost_rate: float,
    *,
    rho: float,
    eta: float = combiner.DSR_ETA,
    seed: int = 0,
    state: combiner.DsrState | None = None,
) -> tuple[np.ndarray, combiner.DsrState]:
    """Positions per bar and the state after the last one, from ``state`` (default: the seed's start)."""
    st = dsr_start(features.shape[1], seed) if state is None else state
    n = features.shape[0]
    out = np.zeros(n)
    for t in range(n):
        st = combiner.dsr_update(st, features[t], float(ret[t]), float(funding[t]), cost_rate, rho, eta)
        out[t] = st.f1
    return out, st


# --- the dynamic-programming oracle and its imitation ------------------------------------------


def oracle_path(
    ret: np.ndarray, funding: np.ndarray, cost_rate: float, levels: np.ndarray = LEVELS
) -> tuple[np.ndarray, float]:
    """Hindsight-optimal exposures ``e[0..m-1]`` over one contiguous segment, and their total net return.

    Starts flat before the segment; maximizes the *sum* of per-bar net returns (arithmetic, as
    ``net_returns`` scores them) over bars ``1..m-1`` of the segment; the last decision earns nothing
    inside the segment and repeats the one before.
    """
    m = ret.size
    if m < 2:
        return np.zeros(m), 0.0
    move = cost_rate * np.abs(levels[:, None] - levels[None, :])  # [from, to]
    flat = int(np.argmin(np.abs(levels)))
    value = np.full(levels.size, -np.inf)
    value[flat] = 0.0
    back = np.empty((m - 1, levels.size), dtype=np.int64)
    edge = ret[1:] - funding[1:]
    for t in range(m - 1):
        cand = value[:, None] - move
        back[t] = np.argmax(cand, axis=0)
        value = cand[back[t], np.arange(levels.size)] + levels * edge[t]
    s = int(np.argmax(value))
    total = float(value[s])
    path = np.empty(m, dtype=np.int64)
    path[m - 2] = s
    for t in range(m - 2, 0, -1):
        path[t - 1] = back[t, path[t]]
    path[m - 1] = path[m - 2]
    return levels[path], total


def segments(bars: np.ndarray) -> list[np.ndarray]:
    """Contiguous runs of sorted bar positions."""
    bars = np.asarray(bars)
    if bars.size == 0:
        return []
    cut = np.flatnonzero(np.diff(bars) != 1) + 1
    return np.split(bars, cut)


_ORACLE_CACHE: dict[str, np.ndarray] = {}


def oracle_on(bars: np.ndarray, ret: np.ndarray, funding: np.ndarray, cost_rate: float) -> np.ndarray:
    """Oracle exposures for each bar of ``bars`` (each contiguous segment on its own returns only)."""
    key = hashlib.sha256(np.ascontiguousarray(bars).tobytes() + repr(cost_rate).encode()).hexdigest()
    if key not in _ORACLE_CACHE:
        parts = [oracle_path(ret[s], funding[s], cost_rate)[0] for s in segments(bars)]
        _ORACLE_CACHE.clear()  # one training set at a time is enough (the imitation grid reuses it)
        _ORACLE_CACHE[key] = np.concatenate(parts) if parts else np.zeros(0)
    return _ORACLE_CACHE[key]


def imitation_model(
    features: np.ndarray,
    ret: np.ndarray,
    funding: np.ndarray,
    cost_rate: float,
    train_bars: np.ndarray,
    lam: float,
    names: tuple[str, ...] = (),
) -> tuple[tuple[combiner.Linear | float, combiner.Linear | float], np.ndarray]:
    """The two fitted legs (long, short) and the training rows they were fitted on.

    The oracle of a segment reads that segment's returns only; rows are the training bars except
    each segment's last (whose oracle decision has no return inside the segment). A leg whose
    labels are all equal is that constant probability (0 without rows).
    """
    bars = np.asarray(train_bars)
    target = oracle_on(bars, ret, funding, cost_rate)
    keep = np.ones(bars.size, dtype=bool)
    for s in segments(bars):
        keep[np.searchsorted(bars, s[-1])] = False
    rows, target = bars[keep], target[keep]
    x = standardize(features, rows)
    mu = features[rows].mean(axis=0) if rows.size else np.zeros(features.shape[1])
    sd = features[rows].std(axis=0) if rows.size else np.ones(features.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    legs: list[combiner.Linear | float] = []
    for sign in (1.0, -1.0):
        y = (sign * target > 0).astype(np.float64)
        if y.size == 0 or y.min() == y.max():
            legs.append(float(y[0]) if y.size else 0.0)
        else:
            legs.append(combiner.Linear(names, mu, sd, fit_logistic(x[rows], y, lam), 0.0, 0.0))
    return (legs[0], legs[1]), rows


def imitation_exposure(
    features: np.ndarray,
    ret: np.ndarray,
    funding: np.ndarray,
    cost_rate: float,
    train_bars: np.ndarray,
    lam: float,
) -> np.ndarray:
    """Exposure ``P(long) - P(short)`` of two logistics fitted to the oracle path on training bars
    (:func:`imitation_model`), scored by ``common.combiner.imitation_path``, what live runs."""
    legs, _ = imitation_model(features, ret, funding, cost_rate, train_bars, lam)
    return combiner.imitation_path(features, legs)
