"""Backtests: baselines by hand, policy backtest == env, and determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.actions import majority_vote
from common.events import Target
from config import FillPrice
from training.backtest import evaluate, ledger_for, policy_exposure, run_baselines
from training.baselines import baseline_exposure, baseline_names
from training.env import BtcPerpVecEnv
from training.ledger import CostModel, simulate
from training.market import Market
from training.split import Window

from .conftest import random_policy

WINDOW = Window(30_000, 31_500)


@pytest.mark.parametrize("fill", list(FillPrice))
def test_buy_and_hold_and_flat_by_hand(market: Market, fill: FillPrice) -> None:
    """Buy and hold recomputed bar by bar: bought at the first decision's fill price, each step
    earns the move between consecutive fill prices, the last step ends at the window's last close."""
    c = CostModel(fill_price=fill)
    res = run_baselines(market, WINDOW, c)
    assert list(res) == baseline_names(market.signals.strategies)
    close = market.close[WINDOW.as_slice()]
    opens = market.open[WINDOW.as_slice()]
    index = market.index[WINDOW.as_slice()]
    n = len(close)
    # the price the decision at bar k trades at, written out from the model's definition
    fill_px = [close[k] if fill is FillPrice.SIGNAL_CLOSE else opens[k + 1] for k in range(n - 1)]
    fill_px.append(close[n - 1])  # the window's last bar: no next open, marked at its close
    equity = 1.0
    for k in range(n - 1):
        hours = (index[k + 1] - index[k]).total_seconds() / 3600
        fee = c.cost_rate if k == 0 else 0.0
        equity *= 1 + fill_px[k + 1] / fill_px[k] - 1 - fee - c.funding_rate_hourly * hours
    assert res["buy_and_hold"].equity[-1] == pytest.approx(equity, rel=1e-12)
    flat = evaluate({"flat": res["flat"]})["flat"]
    assert flat["total_return"] == 0.0 and flat["trades"] == 0 and flat["sharpe"] == 0.0


def test_fill_models_differ_exactly_where_close_is_not_the_next_open(market: Market) -> None:
    """Real data: the two models' step returns differ on the steps whose fill prices differ (close
    != next open), are bit-identical on every other step, and on bars rewritten so that each open
    equals the previous close the two whole ledgers are bit-identical."""
    window = Window(WINDOW.start, WINDOW.start + 600)
    exposure = np.where((np.arange(len(window) - 1) // 50) % 2 == 0, 1.0, -0.5)  # trades every 50 bars
    nxt = ledger_for(exposure, market, window, CostModel(fill_price=FillPrice.NEXT_OPEN))
    sig = ledger_for(exposure, market, window, CostModel(fill_price=FillPrice.SIGNAL_CLOSE))
    close, opens = market.close[window.as_slice()], market.open[window.as_slice()]
    same_px = np.append(opens[1:] == close[:-1], True)  # fill price of the decision at bar k agrees
    step_same = same_px[:-1] & same_px[1:]
    assert (~same_px).sum() > 100  # real data: close != next open on many bars
    held = exposure != 0.0
    assert np.array_equal(nxt.gross[step_same], sig.gross[step_same])
    assert np.all(nxt.gross[~step_same & held] != sig.gross[~step_same & held])
    assert nxt.equity[-1] != sig.equity[-1]
    # continuous bars (open == previous close): the models agree bit for bit
    glued = dataclasses.replace(market, open=np.append(market.close[0], market.close[:-1]))
    a = ledger_for(exposure, glued, window, CostModel(fill_price=FillPrice.NEXT_OPEN))
    b = ledger_for(exposure, glued, window, CostModel(fill_price=FillPrice.SIGNAL_CLOSE))
    assert np.array_equal(a.equity, b.equity) and np.array_equal(a.net, b.net)
    assert np.array_equal(b.equity, sig.equity)  # signal_close never reads the opens


def test_the_last_bar_has_no_next_open() -> None:
    """Two decisions over three bars: the first fills at bar 1's open, the second at bar 2's open,
    and the last step ends at bar 2's close (nothing after the series is read); with signal_close
    the same decisions trade at the closes."""
    close = np.array([100.0, 110.0, 121.0])
    opens = np.array([99.0, 105.0, 115.0])
    costs = CostModel(taker_fee=0.0, slippage_bps=0.0, funding_rate_hourly=0.0)
    exposure = np.array([1.0, 1.0])
    nxt = simulate(exposure, close, np.ones(3), costs, open_=opens)
    assert nxt.gross.tolist() == [115.0 / 105.0 - 1.0, 121.0 / 115.0 - 1.0]
    sig = simulate(exposure, close, np.ones(3), dataclasses.replace(costs, fill_price=FillPrice.SIGNAL_CLOSE))
    assert sig.gross.tolist() == [110.0 / 100.0 - 1.0, 121.0 / 110.0 - 1.0]
    with pytest.raises(ValueError, match="needs the bars' opens"):
        simulate(exposure, close, np.ones(3), costs)  # next_open without opens: no silent guess


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


@pytest.mark.parametrize("fill", list(FillPrice))
def test_policy_backtest_equals_env_and_is_deterministic(market: Market, fill: FillPrice) -> None:
    """The bar-by-bar backtest of the live MLP == the env stepped with the same greedy policy."""
    policy = random_policy(market)
    window = Window(WINDOW.start, WINDOW.start + 400)
    exposure = policy_exposure(policy, market, window)
    assert np.array_equal(exposure, policy_exposure(policy, market, window))
    assert len(np.unique(exposure)) > 1  # it trades
    costs = CostModel(fill_price=fill)
    ledger = ledger_for(exposure, market, window, costs)
    env = BtcPerpVecEnv(market, window, num_envs=1, max_step=len(window) - 1, random_start=False, costs=costs)
    obs, _ = env.reset()
    for k in range(len(window) - 1):
        obs, _, _, truncated, info = env.step(policy.act(obs))
        assert info["exposure"][0] == exposure[k]
    assert truncated[0]
    assert info["equity"][0] == pytest.approx(ledger.equity[-1], rel=1e-12)
