"""Online combiners (``hedge`` / ``dsr``, ADR 0026): one per-bar step for research and live.

The research paths (``candidates.hedge_exposure``, ``learners.dsr_trader``) now run
``common.combiner``'s per-bar updates; the copies below are the research code as it was before
(vectorized Hedge weights and weighted sum, cumulative-sum z-scores and the in-place trader), and
the exposures must not move at any bar of several thousand real hours for the grid configurations.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from common import combiner
from common.combiner import export_combiner, load_combiner
from common.observation import FeatureSpec
from common.signals import SignalArrays
from config import FallbackMode
from meta_consumer.decide import BAR_CLOSES, MARK_CLOSES, Carry, Choice, TickInput, decide_tick
from tests.unit.meta.real_data import PRICE, live_tick, real_context, real_inputs, vote_context
from training.research import learners
from training.research.candidates import (
    Config,
    Context,
    default_grid,
    exposure,
    hedge_experts,
    hedge_exposure,
    hedge_run,
    round2_grid,
    snap,
)
from training.research.funding import bar_funding
from training.research.protocol import funding_known

N = 4000


@pytest.fixture(scope="module")
def ctx() -> Context:
    """The last 4,000 real hours, the price strategies, published and per-bar funding, 10 bp cost."""
    return real_context(N)


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


# --- live: decide_tick fed tick by tick == the research path continued from the artefact's state --

K = 2000  # the artefact's training range is bars 0 .. K-1; live decides from bar K on


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray]:
    """Candles, price strategies' answers, published funding and per-bar funding charge."""
    candles, sig, events = real_inputs(N)
    return candles, sig, funding_known(sig.index, events), bar_funding(sig.index, events, 1e-5).per_bar


def hedge_artefact(ctx: Context, eta: float, decay: float, upto: int = K) -> bytes:
    _, st = hedge_run(hedge_experts(ctx.targets[:upto]), ctx.ret[:upto], eta, decay)
    return export_combiner("hedge", ctx.strategies, {"eta": eta, "decay": decay, **st.to_params()})


def dsr_artefact(ctx: Context, rho: float, seed: int, upto: int = K) -> bytes:
    assert ctx.funding is not None
    _, st = learners.dsr_run(
        ctx.features[:upto], ctx.ret[:upto], ctx.funding[:upto], ctx.cost_rate, rho=rho, seed=seed
    )
    params = {"rho": rho, "seed": float(seed), "eta": combiner.DSR_ETA, "cost_rate": ctx.cost_rate}
    return export_combiner(
        "dsr", ctx.strategies, {**params, "features": list(ctx.feature_names), **st.to_params()}
    )


def model_row(art: bytes, model_id: str = "online-test") -> SimpleNamespace:
    return SimpleNamespace(
        model_id=model_id,
        artifact=art,
        artifact_sha256=hashlib.sha256(art).hexdigest(),
        feature_spec=json.loads(FeatureSpec(strategies=PRICE).to_json()),
    )


def choose(art: bytes | None) -> Choice:
    spec = FeatureSpec(strategies=PRICE)
    if art is None:
        return Choice("fallback", spec, None, FallbackMode.MAJORITY_VOTE)
    comb = load_combiner(model_row(art), max_closes=BAR_CLOSES)
    return Choice("online-test", spec, None, FallbackMode.MAJORITY_VOTE, combiner=comb)


def tick_input(real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray], t: int) -> TickInput:
    candles, sig, fund, charge = real
    return live_tick(candles, sig, fund, t, charge)


def run_live(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray],
    schedule: Callable[[int], Choice],
    ticks: range,
    carry: Carry | None = None,
) -> tuple[np.ndarray, list[str], Carry]:
    carry = carry or Carry()
    out, reasons = [], []
    for t in ticks:
        o = decide_tick(tick_input(real, t), carry, schedule(t), PRICE, step=0.25, max_exposure=1.0)
        carry = o.carry
        out.append(o.target_exposure)
        reasons.append(o.reason)
    return np.asarray(out), reasons, carry


def live_context(real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray]) -> Context:
    candles, sig, fund, charge = real
    return vote_context(candles, sig, fund, charge, 0.001)


def hedge_continued(ctx: Context, art: bytes, start: int) -> np.ndarray:
    """The vectorized path seeded from the artefact's state at bar ``start`` (research arithmetic)."""
    comb = load_combiner(model_row(art))
    st = combiner.HedgeState.from_params(comb.initial_state())
    out = np.zeros(len(ctx) - start)
    for i, t in enumerate(range(start, len(ctx))):
        st, mix = combiner.hedge_update(
            st, ctx.targets[t], float(ctx.ret[t]), comb.params["eta"], comb.params["decay"]
        )
        out[i] = mix
    return snap(out)


def dsr_continued(ctx: Context, art: bytes, start: int) -> np.ndarray:
    assert ctx.funding is not None
    comb = load_combiner(model_row(art))
    st = combiner.DsrState.from_params(comb.initial_state())
    p = comb.params
    pos, _ = learners.dsr_run(
        ctx.features[start:],
        ctx.ret[start:],
        ctx.funding[start:],
        p["cost_rate"],
        rho=p["rho"],
        eta=p["eta"],
        state=st,
    )
    return snap(pos)


@pytest.mark.parametrize(
    "family,params",
    [("hedge", (5.0, 1 / 168)), ("hedge", (20.0, 0.0)), ("dsr", (0.01, 1)), ("dsr", (0.001, 0))],
)
def test_live_online_equals_the_research_path_bar_by_bar(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray], family: str, params: tuple[float, float]
) -> None:
    """Selected at bar K (fallback before, as a model selected after the service started): every
    live exposure from K on == the research path over all bars (run from bar 0), bit for bit."""
    ctx = live_context(real)
    if family == "hedge":
        art = hedge_artefact(ctx, *params)
        research = exposure(Config("hedge", {"eta": params[0], "decay": params[1]}), ctx)
    else:
        art = dsr_artefact(ctx, params[0], int(params[1]))
        research = exposure(Config("dsr", {"rho": params[0], "seed": params[1]}), ctx)
    chosen = choose(art)
    fallback = choose(None)
    live, reasons, carry = run_live(real, lambda t: chosen if t >= K else fallback, range(N))
    k = np.flatnonzero(live[K:] != research[K:])
    assert k.size == 0, f"first difference at bar {K + k[0]}: {live[K + k[0]]} vs {research[K + k[0]]}"
    assert np.unique(live[K:]).size >= 3  # not vacuous: it trades
    assert all(r == "" for r in reasons[K:])
    assert carry.online is not None and carry.online.model == chosen.combiner.fingerprint  # type: ignore[union-attr]
    assert len(carry.mark.closes) == (721 if family == "dsr" else MARK_CLOSES)  # type: ignore[union-attr]


@pytest.mark.parametrize("family", ["hedge", "dsr"])
def test_restart_from_the_serialized_carry_continues_exactly(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray], family: str
) -> None:
    """Ticks K..N in one go == K..j, the Carry through JSON (as the decision row stores it), j+1..N."""
    ctx = live_context(real)
    art = hedge_artefact(ctx, 5.0, 1 / 720) if family == "hedge" else dsr_artefact(ctx, 0.01, 2)
    chosen = choose(art)
    start, j, end = K - 800, K + 700, K + 1500
    pre = run_live(real, lambda t: choose(None), range(start, K))[2]
    once, _, c1 = run_live(real, lambda t: chosen, range(K, end), pre)
    a, _, mid = run_live(real, lambda t: chosen, range(K, j), pre)
    mid = Carry.from_dict(json.loads(json.dumps(mid.to_dict())))
    b, _, c2 = run_live(real, lambda t: chosen, range(j, end), mid)
    assert np.array_equal(np.concatenate([a, b]), once)
    assert json.dumps(c1.to_dict()) == json.dumps(c2.to_dict())
    # a tick decided again from the same carry gives the same decision and state (determinism)
    again = decide_tick(tick_input(real, j), mid, chosen, PRICE, step=0.25, max_exposure=1.0)
    first = decide_tick(tick_input(real, j), mid, chosen, PRICE, step=0.25, max_exposure=1.0)
    assert again.carry.to_dict() == first.carry.to_dict() and again.target_exposure == b[0]


def test_hot_reload_to_another_model_starts_from_its_state_and_a_tick_without_bar_holds(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray],
) -> None:
    ctx = live_context(real)
    one, two = dsr_artefact(ctx, 0.01, 0), dsr_artefact(ctx, 0.001, 1, upto=K - 300)
    c1, c2, fallback = choose(one), choose(two), choose(None)
    m = K + 500
    live, _, carry = run_live(real, lambda t: fallback if t < K else c1 if t < m else c2, range(K - 800, N))
    live = live[800:]
    assert np.array_equal(live[: m - K], dsr_continued(ctx, one, K)[: m - K])
    assert np.array_equal(live[m - K :], dsr_continued(ctx, two, m))  # two's own state, seeded at m
    assert not np.array_equal(dsr_continued(ctx, one, K)[m - K :], live[m - K :])
    # a tick whose bar did not arrive does not learn and holds the last fraction
    t = tick_input(real, N - 1)
    o = decide_tick(replace(t, bar=None), carry, c2, PRICE, step=0.25, max_exposure=1.0)
    assert o.carry.online == carry.online and o.target_exposure == live[-1]
    assert "no new bar: dsr state held" in o.reason


def test_rows_without_an_online_combiner_carry_nothing_new(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray],
) -> None:
    _, _, carry = run_live(real, lambda t: choose(None), range(K - 5, K))
    assert "online" not in carry.to_dict()
    ctx = live_context(real)
    _, _, carry = run_live(real, lambda t: choose(hedge_artefact(ctx, 5.0, 0.0)), range(K, K + 2), carry)
    assert set(carry.to_dict()["online"]) == {"model", "state", "bar", "fraction"}
    _, _, carry = run_live(real, lambda t: choose(None), range(K + 2, K + 3), carry)
    assert "online" not in carry.to_dict()  # deselected: the state is dropped (reselecting starts over)


@pytest.mark.parametrize("family", ["hedge", "dsr"])
def test_no_lookahead_live_and_vectorized(
    real: tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray], family: str
) -> None:
    """Prices, answers and funding changed after bar ``cut``: no decision at or before it moves."""
    candles, sig, fund, charge = real
    cut = K + 400
    c2 = candles.copy()
    c2.iloc[cut + 1 :, c2.columns.get_loc("close")] *= 1.3
    tg = sig.target.copy()
    tg[cut + 1 :] = -tg[cut + 1 :]
    sig2 = replace(sig, target=tg, present=np.ones_like(sig.present))
    fund2, charge2 = fund.copy(), charge.copy()
    fund2[cut + 1 :] += 0.01
    charge2[cut + 1 :] += 0.01
    real2 = (c2, sig2, fund2, charge2)
    ctx, ctx2 = live_context(real), live_context(real2)
    art = hedge_artefact(ctx, 20.0, 0.0) if family == "hedge" else dsr_artefact(ctx, 0.01, 0)
    cont = hedge_continued if family == "hedge" else dsr_continued
    v1, v2 = cont(ctx, art, K), cont(ctx2, art, K)
    assert np.array_equal(v1[: cut - K + 1], v2[: cut - K + 1]) and not np.array_equal(v1, v2)
    ch = choose(art)
    stop = cut + 300
    l1 = run_live(real, lambda t: ch if t >= K else choose(None), range(K - 800, stop))[0][800:]
    l2 = run_live(real2, lambda t: ch if t >= K else choose(None), range(K - 800, stop))[0][800:]
    assert np.array_equal(l1[: cut - K + 1], l2[: cut - K + 1]) and not np.array_equal(l1, l2)
    assert np.array_equal(l1, v1[: stop - K])
