"""Online combiners (``hedge`` / ``dsr``, ADR 0026): one per-bar step for research and live.

The research paths (``candidates.hedge_exposure``, ``learners.dsr_trader``) now run
``common.combiner``'s per-bar updates; the copies below are the research code as it was before
(vectorized Hedge weights and weighted sum, cumulative-sum z-scores and the in-place trader), and
the exposures must not move at any bar of several thousand real hours for the grid configurations.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from common import combiner
from common.dataset import load_bundled_candles
from config import load_settings
from training.research import learners
from training.research.candidates import (
    Config,
    Context,
    build_context,
    default_grid,
    exposure,
    hedge_experts,
    hedge_exposure,
    round2_grid,
    snap,
)
from training.research.funding import bar_funding, load_funding
from training.research.protocol import _baseline_exposures, funding_known
from training.signals import compute_signals, training_exogenous

PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")
N = 4000


@pytest.fixture(scope="module")
def ctx() -> Context:
    """The last 4,000 real hours, the price strategies, published and per-bar funding, 10 bp cost."""
    candles = load_bundled_candles().iloc[-N:]
    sig = compute_signals(candles, exogenous=training_exogenous()).restricted(PRICE)
    events = load_funding(Path(load_settings().exogenous.data_dir))
    fund = bar_funding(sig.index, events, 1e-5)
    return build_context(
        candles, sig, _baseline_exposures(sig)["majority_vote"], funding_known(sig.index, events),
        fund.per_bar, 0.001,
    )  # fmt: skip


def old_hedge_exposure(ctx: Context, eta: float, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """The research Hedge before ADR 0026 (a verbatim copy)."""
    experts = hedge_experts(ctx.targets)
    n, m = experts.shape
    gains = np.zeros((n, m))
    gains[1:] = experts[:-1] * ctx.ret[1:, None]
    w = np.empty((n, m))
    logw = np.zeros(m)
    keep = 1.0 - decay
    for t in range(n):
        logw = keep * logw + eta * gains[t]
        z = np.exp(logw - logw.max())
        w[t] = z / z.sum()
    return snap(np.sum(w * experts, axis=1)), w


def old_dsr_trader(
    features: np.ndarray, ret: np.ndarray, funding: np.ndarray, cost_rate: float, rho: float, seed: int
) -> np.ndarray:
    """The research DSR trader before ADR 0026 (a verbatim copy, with its vectorized z-scores)."""
    x = np.hstack([learners.causal_zscore(features), np.ones((features.shape[0], 1))])
    n, k = x.shape
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.1, size=k)
    out = np.zeros(n)
    f1 = f2 = 0.0
    g1: np.ndarray = np.zeros(k)
    g2: np.ndarray = np.zeros(k)
    a, b = 0.0, 1e-4
    xs = x.tolist()
    for t in range(n):
        r_t = float(ret[t])
        r = f1 * r_t - cost_rate * abs(f1 - f2) - f1 * float(funding[t])
        _, d_dr, a, b = learners.dsr_step(a, b, r, 0.01)
        sgn = math.copysign(1.0, f1 - f2) if f1 != f2 else 0.0
        dr_df1 = r_t - float(funding[t]) - cost_rate * sgn
        dr_df2 = cost_rate * sgn
        w += rho * d_dr * (dr_df1 * g1 + dr_df2 * g2)
        xt = np.asarray(xs[t])
        f = math.tanh(float(w @ xt))
        f2, f1 = f1, f
        g2, g1 = g1, (1.0 - f * f) * xt
        out[t] = f
    return out


def grid(family: str) -> list[Config]:
    configs = {c.key: c for c in default_grid() + round2_grid() if c.family == family}
    return list(configs.values())


def test_hedge_research_exposure_unchanged_at_every_bar(ctx: Context) -> None:
    configs = grid("hedge")
    assert len(configs) == 9
    for c in configs:
        new = exposure(c, ctx)
        old, w_old = old_hedge_exposure(ctx, float(c.params["eta"]), float(c.params["decay"]))
        assert np.array_equal(new, old), c.key
        _, w = hedge_exposure(ctx, float(c.params["eta"]), float(c.params["decay"]))
        assert np.array_equal(w, w_old), c.key  # the weights too (the research plots them)
    assert np.unique(new).size > 3  # it trades: several exposure levels


def test_dsr_research_exposure_unchanged_at_every_bar(ctx: Context) -> None:
    configs = grid("dsr")
    assert len(configs) == 6
    assert ctx.funding is not None
    for c in configs:
        rho, seed = float(c.params["rho"]), int(c.params["seed"])
        old = old_dsr_trader(ctx.features, ctx.ret, ctx.funding, ctx.cost_rate, rho, seed)
        new = learners.dsr_trader(ctx.features, ctx.ret, ctx.funding, ctx.cost_rate, rho=rho, seed=seed)
        assert np.array_equal(new, old), c.key  # the continuous positions, not only the snapped
        assert np.array_equal(exposure(c, ctx), snap(old)), c.key
    assert np.unique(snap(new)).size > 3


def test_incremental_zscore_rows_equal_the_cumulative_ones(ctx: Context) -> None:
    z = learners.causal_zscore(ctx.features)
    s1 = np.zeros(ctx.features.shape[1])
    s2 = np.zeros_like(s1)
    for t in range(len(ctx)):
        x = ctx.features[t]
        s1, s2 = s1 + x, s2 + x * x
        assert np.array_equal(combiner.causal_z_row(s1, s2, t + 1, x), z[t]), t


def test_state_resumes_exactly(ctx: Context) -> None:
    """Running 0..k, then from the state k+1..n == running 0..n (what the artefact and carry rely on)."""
    assert ctx.funding is not None
    k = 2500
    full, end = learners.dsr_run(ctx.features, ctx.ret, ctx.funding, 0.001, rho=0.01, seed=1)
    head, mid = learners.dsr_run(ctx.features[:k], ctx.ret[:k], ctx.funding[:k], 0.001, rho=0.01, seed=1)
    mid = combiner.DsrState.from_params(mid.to_params())  # through JSON-readable floats
    tail, end2 = learners.dsr_run(ctx.features[k:], ctx.ret[k:], ctx.funding[k:], 0.001, rho=0.01, state=mid)
    assert np.array_equal(np.concatenate([head, tail]), full)
    assert end.to_params() == end2.to_params()
