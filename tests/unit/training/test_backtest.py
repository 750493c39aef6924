"""Backtests: baselines by hand, policy backtest == env, and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from common.actions import majority_vote
from common.events import Target
from training.backtest import evaluate, ledger_for, policy_exposure, run_baselines
from training.baselines import baseline_exposure, baseline_names
from training.env import BtcPerpVecEnv
from training.ledger import CostModel
from training.market import Market
from training.split import Window

from .conftest import random_policy

WINDOW = Window(30_000, 31_500)


def test_buy_and_hold_and_flat_by_hand(market: Market) -> None:
    res = run_baselines(market, WINDOW)
    assert list(res) == baseline_names(market.signals.strategies)
    c = CostModel()
    equity = 1.0 - 0.0 * c.cost_rate
    close = market.close[WINDOW.as_slice()]
    index = market.index[WINDOW.as_slice()]
    for k in range(len(close) - 1):
        hours = (index[k + 1] - index[k]).total_seconds() / 3600
        fee = c.cost_rate if k == 0 else 0.0
        equity *= 1 + close[k + 1] / close[k] - 1 - fee - c.funding_rate_hourly * hours
    assert res["buy_and_hold"].equity[-1] == pytest.approx(equity, rel=1e-12)
    flat = evaluate({"flat": res["flat"]})["flat"]
    assert flat["total_return"] == 0.0 and flat["trades"] == 0 and flat["sharpe"] == 0.0


def test_rule_baselines_follow_the_strategies(market: Market) -> None:
    sig = market.signals
    rows = sig.target[WINDOW.start : WINDOW.end - 1]
    mv = baseline_exposure("majority_vote", sig, WINDOW)
    names = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}
    for k in range(0, len(rows), 97):
        assert mv[k] == majority_vote([names[int(v)] for v in rows[k]], 1.0)
    ew = baseline_exposure("equal_weight", sig, WINDOW)
    assert np.all(np.abs(ew - rows.mean(axis=1)) <= 0.125 + 1e-12)  # nearest grid point
    assert set(np.unique(ew * 4)) <= set(range(-4, 5))
    j = sig.strategies.index("ott")
    assert np.array_equal(baseline_exposure("single:ott", sig, WINDOW), rows[:, j].astype(float))
    with pytest.raises(KeyError):
        baseline_exposure("single:nope", sig, WINDOW)


def test_policy_backtest_equals_env_and_is_deterministic(market: Market) -> None:
    """The bar-by-bar backtest of the live MLP == the env stepped with the same greedy policy."""
    policy = random_policy(market)
    window = Window(WINDOW.start, WINDOW.start + 400)
    exposure = policy_exposure(policy, market, window)
    assert np.array_equal(exposure, policy_exposure(policy, market, window))
    assert len(np.unique(exposure)) > 1  # it trades
    ledger = ledger_for(exposure, market, window, CostModel())
    env = BtcPerpVecEnv(market, window, num_envs=1, max_step=len(window) - 1, random_start=False)
    obs, _ = env.reset()
    for k in range(len(window) - 1):
        obs, _, _, truncated, info = env.step(policy.act(obs))
        assert info["exposure"][0] == exposure[k]
    assert truncated[0]
    assert info["equity"][0] == pytest.approx(ledger.equity[-1], rel=1e-12)
