"""The RL recast of issue 16 (``training.research.rl``): FeatureSpec v2 is causal and has no
constant dims, the env books exactly what the research ledger books and never steps over a purge
gap, the greedy walk carries the held target, PPO learns a signal that is there (and is
reproducible per seed), and the protocol logs every seed and the ensemble, re-using the fits."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.signals import SignalArrays
from training.research import cpcv, rl
from training.research.candidates import Config, build_context, exposure, net_returns, snap
from training.research.protocol import Settings, prepare, run_research
from training.research.report import write_report


def _market(n: int, seed: int, oracle: bool = False, k: int = 3) -> tuple[pd.DataFrame, SignalArrays]:
    """Random-walk closes and ``k`` strategies holding random 48 h spells; ``oracle``: strategy
    ``s0`` instead holds the sign of the *next* bar's return (a signal that is really there)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC", name="date")
    close = 10_000 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    candles = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=index
    )
    target = np.repeat(rng.integers(-1, 2, size=(n // 48 + 1, k)), 48, axis=0)[:n].astype(np.int8)
    if oracle:
        nxt = np.zeros(n)
        nxt[:-1] = np.sign(close[1:] - close[:-1])
        target[:, 0] = nxt.astype(np.int8)
    sig = SignalArrays(
        strategies=tuple(f"s{j}" for j in range(k)),
        index=index,
        target=target,
        event=np.zeros((n, k), dtype=np.int8),
        confidence=np.ones((n, k)),
        age=np.zeros((n, k), dtype=np.int64),
        present=np.ones((n, k), dtype=bool),
        warmup=50,
    )
    return candles, sig


def _ctx(candles: pd.DataFrame, sig: SignalArrays, cost: float = 0.0005, gap: bool = False):  # type: ignore[no-untyped-def]
    n = len(sig)
    vote = np.sign(sig.target.astype(np.float64).sum(axis=1))
    rng = np.random.default_rng(3)
    funding = rng.normal(0, 1e-5, n)
    ctx = build_context(candles, sig, vote, np.full(n, 1e-4), funding, cost)
    g = rng.normal(0, 0.002, n) if gap else None
    if g is not None:
        g[0] = 0.0
    return replace(ctx, gap=g)


def test_features_v2_are_causal_and_name_every_column() -> None:
    candles, sig = _market(1500, 1)
    ctx = _ctx(candles, sig)
    x, names = rl.features_v2(ctx)
    assert x.shape == (1500, len(names)) and np.isfinite(x).all()
    assert {"pnl_720h:s0", "hit_24h:s2", "agreement", "vol_regime", "trend_168h", "funding_last"} <= set(
        names
    )
    # change everything after bar 900 (prices and votes): rows up to 900 must not move
    t0 = 900
    c2 = candles.copy()
    c2.iloc[t0 + 1 :, c2.columns.get_loc("close")] *= 1.3
    sig2 = replace(sig, target=sig.target.copy())
    sig2.target[t0 + 1 :] = -sig2.target[t0 + 1 :]
    ctx2 = _ctx(c2, sig2)
    x2, _ = rl.features_v2(ctx2)
    assert np.array_equal(x[: t0 + 1], x2[: t0 + 1])
    assert not np.array_equal(x[t0 + 1 :], x2[t0 + 1 :])


def test_standardized_drops_constant_columns_with_training_statistics_only() -> None:
    x = np.column_stack([np.r_[np.arange(9.0), 40.0], np.ones(10), np.r_[np.zeros(5), np.arange(5.0)]])
    z, keep = rl.standardized(x, np.arange(5))  # column 2 is constant on the training rows
    assert keep.tolist() == [0]
    assert z.shape == (10, 1) and z[:5, 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert z.max() == 5.0  # clipped


@pytest.mark.parametrize("gap", [False, True])
def test_step_book_is_the_research_ledger_bar_by_bar(gap: bool) -> None:
    candles, sig = _market(600, 2)
    ctx = _ctx(candles, sig, gap=gap)
    book = rl.step_returns(ctx, ctx.funding, ctx.gap, ctx.cost_rate)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 5, 600)
    e = rl.TARGETS[idx]
    want = net_returns(e, ctx.ret, ctx.funding, ctx.cost_rate, 1.0, ctx.gap)
    prev = np.r_[2, 2, idx[:-2]]  # e[t-2] (flat before the start)
    new = np.r_[2, idx[:-1]]  # e[t-1]
    got = book[np.arange(600), prev, new]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


def test_env_pays_the_residual_over_the_vote_and_never_crosses_a_purge_gap() -> None:
    n = 400
    z = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    book = np.random.default_rng(1).normal(0, 0.01, (n, 5, 5))
    vote = np.random.default_rng(2).normal(0, 0.01, n)
    train = np.r_[np.arange(10, 150), np.arange(200, 390)]  # a purge gap 150..199
    env = rl.ResidualEnv(z, book, vote, train, num_envs=8, episode=50, seed=4)
    s = env.reset()
    assert s.shape == (8, 4 + 5) and np.all(s[:, 4:].sum(axis=1) == 1.0)
    allowed = set(train.tolist())
    rng = np.random.default_rng(5)
    for _ in range(300):
        t, pos = env.t.copy(), env.pos.copy()
        a = rng.integers(0, 5, 8)
        s, r, done = env.step(a)
        assert all(int(b) in allowed and int(b) + 1 in allowed for b in t)
        np.testing.assert_allclose(r, (book[t + 1, pos, a] - vote[t + 1]) * rl.REWARD_SCALE, rtol=1e-6)
        stepped = ~done
        assert np.array_equal(env.t[stepped], t[stepped] + 1) and np.array_equal(env.pos[stepped], a[stepped])
        np.testing.assert_array_equal(s[stepped, :4], z[env.t[stepped]])


def test_greedy_walk_feeds_the_held_target_back() -> None:
    # one linear layer on [feature, one-hot held]: always move one level up from the held target
    w = np.zeros((6, 5))  # (in, out), as common.policy runs it
    for i in range(5):
        w[1 + i, min(i + 1, 4)] = 1.0
    path = rl.greedy_path([(w, np.zeros(5), "identity")], np.zeros((6, 1)))
    assert path.tolist() == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]  # from flat: 0.5, then 1, then stays


def test_ppo_learns_a_real_signal_over_the_vote_and_one_seed_is_one_path() -> None:
    candles, sig = _market(3000, 9, oracle=True, k=5)
    ctx = _ctx(candles, sig, cost=0.0)
    inp = rl.fit_inputs(ctx, ctx.funding, None, 0.0)
    train, test = np.arange(60, 2000), np.arange(2000, 3000)
    path = rl.fit_policy(inp, train, horizon=24, seed=0, steps=40_960)
    short = rl.fit_policy(inp, train, horizon=24, seed=1, steps=8192)
    assert np.array_equal(short, rl.fit_policy(inp, train, horizon=24, seed=1, steps=8192))
    r = net_returns(path, ctx.ret, ctx.funding, 0.0)[test]
    v = net_returns(ctx.majority, ctx.ret, ctx.funding, 0.0)[test]
    follow = net_returns(sig.target[:, 0].astype(np.float64), ctx.ret, ctx.funding, 0.0)[test]
    # following s0 knows every next bar's sign; the vote drowns it in four noise strategies
    assert r.sum() > v.sum() + 0.4 * (follow.sum() - v.sum()), (r.sum(), v.sum(), follow.sum())


def test_protocol_logs_each_seed_and_the_ensemble_and_reuses_the_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candles, sig = _market(1600, 4)
    fits: list[int] = []
    real = rl.fit_policy

    def counted(*a, **k):  # type: ignore[no-untyped-def]
        fits.append(int(k["seed"]))
        return real(*a, **k)

    monkeypatch.setattr(rl, "fit_policy", counted)
    rl._CACHE.clear()
    settings = Settings(groups=4, test_groups=2, purge=48, bootstrap_reps=50, quick=True, rl=True)
    summary = run_research(candles, sig, None, tmp_path / "run", settings)
    rows = [json.loads(x) for x in (tmp_path / "run" / "trials.jsonl").read_text().splitlines()]
    rl_rows = [r for r in rows if r["family"] == "rl"]
    keys = sorted({r["config"] for r in rl_rows})
    assert len(keys) == 3 and all(k.startswith("rl:") for k in keys)  # seeds 0, 1 and their ensemble
    assert len(rl_rows) == 3 * summary["splits"]
    # seeds 0 and 1 are fitted once per distinct training set (inner folds and outer training
    # parts; splits share some); the ensemble re-uses those fits
    prep = prepare(candles, sig, None, settings)
    sets = set()
    for sp in prep.job.splits:
        inner = cpcv.inner_splits(sp, len(sig), prep.job.bounds, prep.job.purge, prep.job.embargo)
        sets |= {sp.train.tobytes(), *(js.train.tobytes() for js in inner)}
    assert sorted(fits) == sorted([0, 1] * len(sets))
    assert summary["trial_count_for_dsr"] == len(summary["configs"])
    text = write_report(tmp_path / "run", tmp_path / "report", command="test").read_text()
    assert "RL recast (`--rl`, ADR 0024)" in text and "horizon 168 h (gamma 0.9940): seeds" in text
    # the ensemble's exposure is the snapped mean of its seeds' paths
    ctx = _ctx(candles, sig)
    tb = np.arange(60, 1000)
    p0 = exposure(Config("rl", {"horizon": 168.0, "seed": 0.0, "steps": 8192.0}), ctx, tb)
    p1 = exposure(Config("rl", {"horizon": 168.0, "seed": 1.0, "steps": 8192.0}), ctx, tb)
    ens = exposure(Config("rl", {"horizon": 168.0, "seeds": 2.0, "steps": 8192.0}), ctx, tb)
    np.testing.assert_array_equal(ens, snap((p0 + p1) / 2))
