"""Baselines and non-RL candidate combiners as exposure paths, and the one ledger that scores them.

Timing (as ``training.ledger``): ``e[t]`` is decided at the close of bar ``t`` from what is known
then and held over bar ``t+1``; the bar-``t`` net return is
``e[t-1] * ret[t] - |e[t-1] - e[t-2]| * cost_rate * m - e[t-1] * funding[t] * m`` (``m`` = cost
multiplier, 2 for the stress run). Every candidate's exposure is snapped to the meta consumer's
0.25 grid and clipped to [-1, 1], so what is scored is what a live intent could target.

Candidates (each a small grid; deterministic except ``dsr``, whose seed is a parameter):

* ``hedge``: exponentiated-gradient weighting (Freund & Schapire's Hedge) over experts = each
  strategy, its negation, and flat; log-weights ``(1 - decay) * logw + eta * gross_return``; the
  exposure is the weight-averaged expert target. Online: weights at ``t`` use returns up to ``t``.
* ``volmanaged``: the majority vote scaled by ``target_vol / realized_vol`` (capped at 1), after
  Moreira & Muir (2017): sizing, not direction.
* ``ridge`` / ``logistic``: L2-regularized linear regression of the next return / logistic
  classification of its sign on votes + trailing returns, volatility and the last published funding
  rate; fitted per split on training bars only, standardized with training statistics.
* ``metalabel``, ``dsr`` (Moody-Saffell direct reinforcement), ``imitation`` (of the DP oracle):
  round 2, in ``training.research.learners``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from common import combiner
from common.signals import SignalArrays

GRID = 0.25
HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True)
class Config:
    """One candidate configuration; ``key`` names it in the trial log."""

    family: str
    params: Mapping[str, float] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.family}:" + json.dumps(dict(sorted(self.params.items())), separators=(",", ":"))

    @property
    def fitted(self) -> bool:
        return self.family in FITTED


#: Families fitted per split on training bars (the rest are online/causal and computed once).
FITTED = ("ridge", "logistic", "metalabel", "imitation", "rl")


def default_grid(quick: bool = False) -> list[Config]:
    """The candidate grid (``quick``: a few configurations for tests)."""
    if quick:
        return [
            Config("hedge", {"eta": 5.0, "decay": 1 / 168}),
            Config("hedge", {"eta": 20.0, "decay": 0.0}),
            Config("volmanaged", {"target_vol": 0.5, "window": 168}),
            Config("ridge", {"lam": 1.0}),
            *round2_grid(quick=True),
        ]
    out = [Config("hedge", {"eta": e, "decay": d}) for e in (1.0, 5.0, 20.0) for d in (0.0, 1 / 720, 1 / 168)]
    out += [
        Config("volmanaged", {"target_vol": v, "window": w}) for v in (0.3, 0.5, 0.8) for w in (72, 168, 720)
    ]
    out += [Config(f, {"lam": lam}) for f in ("ridge", "logistic") for lam in (0.01, 1.0, 100.0)]
    out += round2_grid(quick=False)
    return out


def round2_grid(quick: bool = False) -> list[Config]:
    """Meta-labeling, Moody-Saffell direct reinforcement (3 seeds) and oracle imitation (round 2)."""
    if quick:
        return [
            Config("metalabel", {"horizon": 24, "threshold": 0.5, "lam": 1.0}),
            Config("dsr", {"rho": 0.01, "seed": 0}),
            Config("dsr", {"rho": 0.01, "seed": 1}),
            Config("imitation", {"lam": 1.0}),
        ]
    out = [
        Config("metalabel", {"horizon": h, "threshold": th, "lam": 1.0})
        for h in (24, 168)
        for th in (0.5, 0.55)
    ]
    out += [Config("dsr", {"rho": r, "seed": s}) for r in (0.001, 0.01) for s in (0, 1, 2)]
    out += [Config("imitation", {"lam": lam}) for lam in (1.0, 100.0)]
    return out


def rl_grid(quick: bool = False) -> list[Config]:
    """The RL recast (``training.research.rl``; opt-in, ``--rl``): PPO on target exposures with
    the discount matched to a holding horizon, each seed a trial, plus the seeds' ensemble."""
    if quick:
        steps = 8192.0
        out = [Config("rl", {"horizon": 168.0, "seed": float(s), "steps": steps}) for s in (0, 1)]
        return [*out, Config("rl", {"horizon": 168.0, "seeds": 2.0, "steps": steps})]
    out = []
    for h in (72.0, 240.0):
        out += [Config("rl", {"horizon": h, "seed": float(s)}) for s in range(5)]
        out.append(Config("rl", {"horizon": h, "seeds": 5.0}))
    return out


def snap(e: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(e, dtype=np.float64) / GRID) * GRID, -1.0, 1.0) + 0.0


def net_returns(
    exposure: np.ndarray,
    ret: np.ndarray,
    funding: np.ndarray,
    cost_rate: float,
    mult: float = 1.0,
    gap: np.ndarray | None = None,
) -> np.ndarray:
    """Per-bar net return (length n, element 0 is 0) of exposures ``e[t]`` (any trailing axes).

    ``gap[t] = open[t] / close[t-1] - 1`` applies the ``next_open`` fill model (ADR 0017): the
    exposure decided at the close of ``t-1`` is filled at ``open[t]``, so the previous exposure
    still carries the overnight gap and the new one earns only ``open[t] -> close[t]``. Without
    ``gap`` (or where it is 0) the fill is at the signal bar's close, bit for bit the old formula.
    """
    e = np.asarray(exposure, dtype=np.float64)
    held = np.concatenate([np.zeros((1, *e.shape[1:])), e[:-1]])  # e[t-1]
    before = np.concatenate([np.zeros((1, *e.shape[1:])), held[:-1]])  # e[t-2]
    r = ret.reshape(-1, *([1] * (e.ndim - 1)))
    f = funding.reshape(-1, *([1] * (e.ndim - 1)))
    if gap is None:
        gross = held * r
    else:
        g = gap.reshape(-1, *([1] * (e.ndim - 1)))
        gross = before * g + held * ((r - g) / (1.0 + g))
    return gross - np.abs(held - before) * cost_rate * mult - held * f * mult


def open_gaps(candles: pd.DataFrame) -> np.ndarray:
    """``open[t] / close[t-1] - 1`` per bar (0 at bar 0): what the ``next_open`` fill adds."""
    o = candles["open"].to_numpy(np.float64)
    c = candles["close"].to_numpy(np.float64)
    g = np.zeros_like(c)
    g[1:] = o[1:] / c[:-1] - 1.0
    return g


@dataclass(frozen=True)
class Context:
    """Everything the candidates read, aligned per bar, computed once."""

    index: pd.DatetimeIndex
    close: np.ndarray
    ret: np.ndarray  # ret[t] = close[t]/close[t-1] - 1, ret[0] = 0
    targets: np.ndarray  # [n, S] float
    strategies: tuple[str, ...]
    majority: np.ndarray  # majority-vote exposure e[t]
    features: np.ndarray  # [n, F] known at the close of t
    feature_names: tuple[str, ...]
    funding: np.ndarray | None = None  # per-bar funding charge of a long (what net_returns charges)
    cost_rate: float = 0.0  # fee + slippage per unit of exposure traded
    gap: np.ndarray | None = None  # open[t]/close[t-1] - 1 under the next_open fill model (else None)

    def __len__(self) -> int:
        return int(self.close.size)


def realized_vol(ret: np.ndarray, window: int) -> np.ndarray:
    """Std of the last ``window`` hourly log returns up to and including bar ``t`` (NaN before).

    The live combiners' definition (``common.combiner``, ADR 0020): one implementation, so a
    shipped ``volmanaged`` combiner decides live exactly what this backtest scored.
    """
    return combiner.realized_vol(ret, window)


def build_context(
    candles: pd.DataFrame,
    signals: SignalArrays,
    majority: np.ndarray,
    funding_known: np.ndarray,
    funding_per_bar: np.ndarray | None = None,
    cost_rate: float = 0.0,
) -> Context:
    """``majority``: the majority-vote exposure per bar; ``funding_known[t]``: last published rate;
    ``funding_per_bar`` / ``cost_rate``: the costs the DSR trader and the oracle optimize against."""
    close = candles["close"].to_numpy(np.float64)
    ret = combiner.simple_returns(close)
    tg = signals.target.astype(np.float64)
    # the live linear combiners' row (common.combiner, ADR 0025): one definition of the features
    features = combiner.linear_features(close, tg, funding_known)
    names = combiner.linear_feature_names(signals.strategies)
    return Context(
        pd.DatetimeIndex(signals.index), close, ret, tg, signals.strategies, majority,
        features, names, funding_per_bar, cost_rate,
    )  # fmt: skip


# --- Hedge -------------------------------------------------------------------------------------


def hedge_experts(targets: np.ndarray) -> np.ndarray:
    """[n, 2S+1]: each strategy, its negation, flat."""
    return np.hstack([targets, -targets, np.zeros((targets.shape[0], 1))])


def hedge_weights(experts: np.ndarray, ret: np.ndarray, eta: float, decay: float = 0.0) -> np.ndarray:
    """Weights ``w[t]`` known at the close of bar ``t`` (after seeing ``ret[t]``); ``w[0]`` uniform.

    Expert gain at bar ``t`` is ``experts[t-1] * ret[t]`` (what following it would have earned,
    before costs); ``logw[t] = (1 - decay) * logw[t-1] + eta * gain[t]``. Each bar is
    ``common.combiner.hedge_step``, the live combiner's update (ADR 0026).
    """
    return hedge_run(experts, ret, eta, decay)[0]


def hedge_run(
    experts: np.ndarray, ret: np.ndarray, eta: float, decay: float
) -> tuple[np.ndarray, combiner.HedgeState]:
    """Weights per bar and the state after the last bar (what a live artefact continues from)."""
    n, m = experts.shape
    w = np.empty((n, m))
    st = combiner.HedgeState(np.zeros(m), np.zeros(m))  # equal weights, no bar before: zero gain
    for t in range(n):
        logw, w[t] = combiner.hedge_step(st.logw, st.experts, float(ret[t]) if t else 0.0, eta, decay)
        st = combiner.HedgeState(logw, experts[t])
    return w, st


def hedge_exposure(ctx: Context, eta: float, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """Snapped exposures and the weights; the mix of each bar is ``common.combiner.hedge_mix``."""
    ex = hedge_experts(ctx.targets)
    w = hedge_weights(ex, ctx.ret, eta, decay)
    return snap(np.array([combiner.hedge_mix(w[t], ex[t]) for t in range(len(ex))])), w


# --- volatility-managed vote -------------------------------------------------------------------


def volmanaged_exposure(ctx: Context, target_vol: float, window: int, cap: float = 1.0) -> np.ndarray:
    """The vote scaled to ``target_vol``: ``common.combiner.volmanaged_path``, what live runs."""
    rv = realized_vol(ctx.ret, int(window))
    return combiner.volmanaged_path(ctx.majority, rv, target_vol, cap, GRID)


# --- regularized linear / logistic -------------------------------------------------------------


def fit_linear(ctx: Context, family: str, lam: float, train_bars: np.ndarray) -> combiner.Linear:
    """Fit ``ridge`` / ``logistic`` on rows ``t = b - 1`` for b in ``train_bars``: the live parameters.

    Row ``t``'s label is bar ``t+1``'s return, so a training bar contributes the decision that was
    held over it. Everything the decision needs later is a training statistic stored in the result
    (feature mean/std, coefficients, the score's centre and std), so :func:`apply_linear` (or the
    live decision, ``common.combiner``) needs no data but the row it scores.
    """
    rows = np.asarray(train_bars) - 1
    rows = rows[rows >= 0]
    xf = ctx.features
    mu = xf[rows].mean(axis=0)
    sd = xf[rows].std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    x = np.hstack([(xf - mu) / sd, np.ones((xf.shape[0], 1))])
    xr = x[rows]
    y = ctx.ret[rows + 1]
    reg = lam * len(rows) * np.eye(x.shape[1])
    reg[-1, -1] = 0.0  # intercept not shrunk
    if family == "ridge":
        beta = np.linalg.solve(xr.T @ xr + reg, xr.T @ (y / (y.std() or 1.0)))
    elif family == "logistic":
        lab = (y > 0).astype(np.float64)
        beta = np.zeros(x.shape[1])
        for _ in range(25):  # Newton / IRLS with an L2 penalty
            p = 1.0 / (1.0 + np.exp(-(xr @ beta)))
            grad = xr.T @ (p - lab) + reg @ beta
            hess = (xr * (p * (1 - p))[:, None]).T @ xr + reg
            delta = np.linalg.solve(hess, grad)
            beta -= delta
            if np.max(np.abs(delta)) < 1e-8:
                break
    else:
        raise KeyError(family)
    model = combiner.Linear(ctx.feature_names, mu, sd, beta, 0.0, 0.0)
    score = model.raw_score(xf[rows])  # the live score's arithmetic, on the training rows
    center = float(np.median(score)) if family == "logistic" else 0.0  # an up-drift is not a view
    return replace(model, center=center, scale=float((score - center).std()))


def apply_linear(ctx: Context, model: combiner.Linear) -> np.ndarray:
    """Exposure ``e[t]`` at every bar: ``common.combiner.Linear.exposure``, what live runs."""
    return model.exposure(ctx.features, GRID)


def fit_predict(ctx: Context, family: str, lam: float, train_bars: np.ndarray) -> np.ndarray:
    """Exposure at every bar of the model fitted on ``train_bars`` (fit, then the live arithmetic).

    Scores are divided by their training std after centring: a 1-sd signal is full size.
    """
    return apply_linear(ctx, fit_linear(ctx, family, lam, train_bars))


def exposure(config: Config, ctx: Context, train_bars: np.ndarray | None = None) -> np.ndarray:
    """The configuration's exposure path over all bars (fitted ones need ``train_bars``)."""
    p: Mapping[str, Any] = config.params
    if config.family == "hedge":
        return hedge_exposure(ctx, float(p["eta"]), float(p["decay"]))[0]
    if config.family == "volmanaged":
        return volmanaged_exposure(ctx, float(p["target_vol"]), int(p["window"]))
    from training.research import learners

    funding = ctx.funding if ctx.funding is not None else np.zeros(len(ctx))
    if config.family == "dsr":
        pos = learners.dsr_trader(
            ctx.features, ctx.ret, funding, ctx.cost_rate, rho=float(p["rho"]), seed=int(p["seed"])
        )
        return snap(pos)
    if config.fitted:
        if train_bars is None:
            raise ValueError(f"{config.key} is fitted: pass train_bars")
        if config.family == "rl":
            from training.research.rl import rl_exposure

            return rl_exposure(ctx, train_bars, p)
        if config.family == "metalabel":
            return snap(
                learners.metalabel_exposure(
                    ctx.features, ctx.majority, ctx.ret, train_bars,
                    int(p["horizon"]), float(p["lam"]), float(p["threshold"]),
                )
            )  # fmt: skip
        if config.family == "imitation":
            return snap(
                learners.imitation_exposure(
                    ctx.features, ctx.ret, funding, ctx.cost_rate, train_bars, float(p["lam"])
                )
            )
        return fit_predict(ctx, config.family, float(p["lam"]), train_bars)
    raise KeyError(config.family)
