"""The vectorized env: interface, PnL against a plain-Python recomputation, seeds, auto-reset."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common.actions import ACTIONS
from config import DEFAULT_FUNDING_RATE_HOURLY, FillPrice
from training.env import BtcPerpVecEnv
from training.ledger import CostModel
from training.market import Market
from training.split import Window

WINDOW = Window(25_000, 27_000)


def _grid_move(action: int, e: float) -> float:
    """The action rule written out by hand (hold, +step, -step, flat, reverse; grid 0.25, |e| <= 1)."""
    new = [e, e + 0.25, e - 0.25, 0.0, -e][action]
    return min(1.0, max(-1.0, round(new / 0.25) * 0.25)) + 0.0


def test_interface(market: Market) -> None:
    env = BtcPerpVecEnv(market, WINDOW, num_envs=8, max_step=100, seed=1)
    assert (env.num_envs, env.max_step, env.state_dim, env.action_dim, env.if_discrete) == (
        8,
        100,
        market.spec.dim,
        len(ACTIONS),
        True,
    )
    assert isinstance(env.env_name, str)
    state, info = env.reset()
    assert "t" in info
    assert state.shape == (8, market.spec.dim) and state.dtype == np.float32
    state, reward, terminated, truncated, _ = env.step(np.zeros(8, dtype=np.int64))
    assert reward.shape == terminated.shape == truncated.shape == (8,)
    assert CostModel().taker_fee == 0.0005 and CostModel().funding_rate_hourly == DEFAULT_FUNDING_RATE_HOURLY


@pytest.mark.parametrize("fill", list(FillPrice))
def test_pnl_equals_independent_recomputation(market: Market, fill: FillPrice) -> None:
    """Equity from the env == a scalar loop over positions, fill prices, fees and funding."""
    env = BtcPerpVecEnv(market, WINDOW, num_envs=4, max_step=300, seed=11, costs=CostModel(fill_price=fill))
    env.reset()
    starts = env.t.copy()
    rng = np.random.default_rng(5)
    actions = rng.integers(0, len(ACTIONS), size=(300, 4))
    rewards = []
    for a in actions:
        _, r, _, truncated, info = env.step(a)
        rewards.append(r)
        if truncated.any():
            final_equity = info["equity"]
    fee = 0.0005 + 1.0 / 10_000
    rate = DEFAULT_FUNDING_RATE_HOURLY
    close, opens = market.close.tolist(), market.open.tolist()

    def px(t: int) -> float:  # what the decision at bar t trades at; the window's last bar: its close
        if fill is FillPrice.SIGNAL_CLOSE or t == WINDOW.end - 1:
            return close[t]
        return opens[t + 1]

    times = market.index
    for k in range(4):
        equity, e, t = 1.0, 0.0, int(starts[k])
        for step in range(300):
            new = _grid_move(int(actions[step, k]), e)
            hours = (times[t + 1] - times[t]).total_seconds() / 3600.0
            pnl = new * (px(t + 1) / px(t) - 1.0) - abs(new - e) * fee - new * rate * hours
            before = equity
            equity = equity * (1.0 + pnl)
            assert rewards[step][k] == pytest.approx(equity - before, rel=1e-5, abs=1e-9)
            e, t = new, t + 1
        assert math.isclose(final_equity[k], equity, rel_tol=1e-12)


def test_same_seed_same_numbers(market: Market) -> None:
    def run(seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = BtcPerpVecEnv(market, WINDOW, num_envs=16, max_step=50, seed=seed)
        obs, _ = env.reset()
        acts = np.random.default_rng(seed).integers(0, 5, size=(120, 16))
        total = np.zeros(16)
        for a in acts:
            obs, r, _, _, _ = env.step(a)
            total += r
        return obs, total

    a, b, c = run(3), run(3), run(4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_auto_reset_and_observation_of_portfolio(market: Market) -> None:
    env = BtcPerpVecEnv(market, WINDOW, num_envs=3, max_step=5, seed=0)
    env.reset()
    for _ in range(4):
        obs, _, _, truncated, info = env.step(np.ones(3, dtype=np.int64))  # INCREASE each step
        assert not truncated.any()
    assert np.allclose(obs[:, -3], 1.0)  # exposure feature, capped at max_exposure
    obs, _, _, truncated, info = env.step(np.ones(3, dtype=np.int64))
    assert truncated.all() and "final_observation" in info
    assert np.allclose(info["final_observation"][:, -3], 1.0)
    assert np.allclose(obs[:, -3], 0.0) and (env.equity == 1.0).all() and (env.steps == 0).all()
    assert ((env.t >= WINDOW.start) & (env.t <= WINDOW.end - 1 - env.max_step)).all()


def test_dsr_reward_is_finite_and_bad_arguments_refused(market: Market) -> None:
    env = BtcPerpVecEnv(market, WINDOW, num_envs=32, max_step=200, seed=2, reward="dsr")
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, r, *_ = env.step(rng.integers(0, 5, size=32))
        assert np.isfinite(r).all()
    with pytest.raises(ValueError):
        BtcPerpVecEnv(market, WINDOW, reward="sharpe")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BtcPerpVecEnv(market, Window(0, len(market) + 1))
    env = BtcPerpVecEnv(market, WINDOW, num_envs=2)
    env.reset()
    with pytest.raises(ValueError):
        env.step(np.array([0, 7]))


def test_dsr_reward_does_not_spike_after_a_flat_stretch(market: Market) -> None:
    """Flat for 150 bars, then long: the first trades' DSR stays on the scale of later ones.

    Without the variance floor, the EMA variance is ~0 after the flat stretch and the first
    trades' ratio came out in the tens of thousands.
    """
    env = BtcPerpVecEnv(market, WINDOW, num_envs=1, max_step=1_000, reward="dsr", random_start=False)
    env.reset()
    rewards = [env.step(np.array([a]))[1][0] for a in [3] * 150 + [1] * 4 + [0] * 600]
    assert rewards[:150] == [0.0] * 150
    first, later = np.abs(rewards[150:170]), np.abs(rewards[300:])
    assert first.max() < 10 * np.quantile(later, 0.99), (first.max(), np.quantile(later, 0.99))
    assert (
        0
        < env.dsr_var_floor
        < np.var(
            market.close[WINDOW.start + 1 : WINDOW.end] / market.close[WINDOW.start : WINDOW.end - 1] - 1
        )
    )


@pytest.mark.parametrize("reward", ["pnl", "dsr"])
def test_env_never_reads_bars_after_its_window(market: Market, reward: str) -> None:
    """Scrambling every price after the window leaves every episode bit-identical."""
    from dataclasses import replace

    window = Window(25_000, 25_400)
    close = market.close.copy()
    close[window.end :] *= 3.0
    opens = market.open.copy()
    opens[window.end :] *= 3.0  # the next_open model must not read the bar after the window either
    from common.observation import rolling_volatility

    other = replace(
        market, close=close, open=opens, volatility=rolling_volatility(close, market.spec.vol_window)
    )

    def run(m: Market) -> list[np.ndarray]:
        env = BtcPerpVecEnv(m, window, num_envs=64, max_step=100, seed=9, reward=reward)  # type: ignore[arg-type]
        obs, _ = env.reset()
        out = [obs]
        for a in np.random.default_rng(1).integers(0, 5, size=(350, 64)):
            obs, r, *_ = env.step(a)
            out += [obs, r]
        return out

    assert all(np.array_equal(a, b) for a, b in zip(run(market), run(other), strict=True))
