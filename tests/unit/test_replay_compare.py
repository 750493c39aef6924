"""The executor-unit execution simulation on hand-computed cases, and the comparison's reporting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.observation import FeatureSpec
from config import FillPrice
from ops.replay_compare import (
    ExecutionModel,
    NothingToCompare,
    Prices,
    _legs,
    compare,
    equity_curve,
    simulate_execution,
)

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2021-01-01 00:00", tz="UTC")
MODEL = ExecutionModel(
    max_position_btc=1.0, max_order_btc=0.5, taker_fee=0.0005, slippage_bps=1.0, funding_rate_hourly=0.0000125
)


def _prices(n: int = 10) -> Prices:
    opens = 100.0 + np.arange(n, dtype=float)
    index = pd.date_range(T0, periods=n, freq="h")
    return Prices(index.asi8, opens, opens + 0.5)


def test_legs_split_in_lots_and_round_down() -> None:
    assert _legs(1.75, 0.5) == [0.5, 0.5, 0.5, 0.25]
    assert _legs(-2.0, 0.5) == [-0.5, -0.5, -0.5, -0.5]
    assert _legs(0.00019, 0.5) == [0.0001]
    assert _legs(0.00005, 0.5) == []


def test_fills_funding_and_equity_by_hand() -> None:
    prices = _prices()
    ticks = [T0 + H, T0 + 2 * H, T0 + 4 * H]  # a gap at T0 + 3h: funding still charged for it
    decisions = pd.DataFrame({"tick_time": ticks, "target_exposure": [1.0, -0.5, 0.0]})
    sim = simulate_execution(decisions, prices, MODEL)
    fills = sim["fills"]
    # tick 1: buy 1 BTC in two legs at open(T0+1h) = 101 slipped up 1 bp
    assert list(fills["side"]) == ["buy", "buy", "sell", "sell", "sell", "buy"]
    assert list(fills["quantity"]) == [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert fills["price"].iloc[0] == pytest.approx(101 * 1.0001, rel=1e-15)
    assert fills["price"].iloc[2] == pytest.approx(102 * 0.9999, rel=1e-15)
    assert fills["price"].iloc[5] == pytest.approx(104 * 1.0001, rel=1e-15)
    assert fills["fee"].iloc[0] == pytest.approx(0.5 * 101 * 1.0001 * 0.0005, rel=1e-15)
    funding = sim["funding"]
    # hours after the first fill's tick up to the last tick; position before each hour's tick
    assert list(funding["funding_time"]) == [T0 + 2 * H, T0 + 3 * H, T0 + 4 * H]
    assert list(funding["position"]) == [1.0, -0.5, -0.5]
    assert funding["amount"].iloc[0] == pytest.approx(-1.0 * 102 * 0.0000125)
    assert funding["amount"].iloc[1] == pytest.approx(0.5 * 103 * 0.0000125)
    equity = sim["equity"]
    assert list(equity["position"]) == [1.0, -0.5, 0.0]
    cash = (
        -(fills["price"] * np.where(fills["side"] == "buy", 1, -1) * fills["quantity"]).sum()
        - fills["fee"].sum()
    )
    assert equity["equity"].iloc[-1] == pytest.approx(cash + funding["amount"].sum(), abs=1e-9)
    again = equity_curve(pd.DatetimeIndex(ticks), fills, funding, prices)
    assert np.array_equal(again["equity"].to_numpy(), equity["equity"].to_numpy())


def test_price_after_the_last_candle_is_the_last_close() -> None:
    prices = _prices(3)
    assert prices.at(np.array([(T0 + 5 * H).value]))[0] == 102.5
    assert prices.at(np.array([(T0 + H).value - 1]))[0] == 101.0


def test_compare_reports_a_missing_tick_and_a_changed_decision() -> None:
    spec = FeatureSpec(strategies=("a",))
    ticks = [T0 + H, T0 + 2 * H, T0 + 3 * H]
    vec = pd.DataFrame(
        {
            "tick_time": ticks,
            "action": ["INCREASE", "HOLD", "FLAT"],
            "current_exposure": [0.0, 1.0, 1.0],
            "target_exposure": [1.0, 1.0, 0.0],
        }
    )
    obs = np.zeros((3, spec.dim), dtype=np.float32)
    features = dict.fromkeys(spec.feature_names(), 0.0)
    rep = vec.iloc[:2].copy()
    rep["degraded"] = False
    rep["features"] = [features, features]
    rep.loc[1, "target_exposure"] = 0.75
    sim = simulate_execution(vec, _prices(), MODEL)
    replay = {"decisions": rep, "fills": sim["fills"], "funding": sim["funding"], "equity": sim["equity"]}
    cmp = compare(replay, vec, obs, spec, sim, {})
    assert not cmp.identical
    assert cmp.checks["decisions (action, target exposure)"]["differences"] == 2
    first = cmp.first_difference()
    assert first is not None and pd.Timestamp(first.tick_time) == ticks[1]
    assert first.replay["target_exposure"] == 0.75 and first.vectorized["target_exposure"] == 1.0
    assert "First difference" in cmp.to_markdown("t")


def test_funding_reaches_the_last_tick_over_long_spans() -> None:
    """np.arange over int64 nanoseconds sizes itself in float64 and dropped the last hour here."""
    first, last = pd.Timestamp("2022-02-24 21:00", tz="UTC"), pd.Timestamp("2022-08-20 01:00", tz="UTC")
    ticks = pd.date_range(first, last, freq="h")
    decisions = pd.DataFrame({"tick_time": ticks, "target_exposure": [1.0] + [0.0] * (len(ticks) - 1)})
    prices = Prices(ticks.asi8, np.full(len(ticks), 100.0), np.full(len(ticks), 100.0))
    funding = simulate_execution(decisions, prices, MODEL)["funding"]
    assert len(funding) == len(ticks) - 1
    assert funding["funding_time"].iloc[-1] == last


def test_an_empty_comparison_is_a_clear_error() -> None:
    """0 ticks on both sides (the bench's old crash: IndexError in ``Prices.at`` on no candles)."""
    empty = np.array([], dtype=np.int64)
    with pytest.raises(ValueError, match="no candles to price from"):
        Prices(empty, empty.astype(float), empty.astype(float)).at(np.array([T0.value]))
    decisions = pd.DataFrame({"tick_time": pd.DatetimeIndex([], tz="UTC"), "target_exposure": []})
    sim = simulate_execution(decisions, _prices(), MODEL)  # no decision: nothing filled, no crash
    assert sim["fills"].empty and sim["funding"].empty and sim["equity"].empty
    replay = {
        "decisions": pd.DataFrame(
            columns=["tick_time", "action", "current_exposure", "target_exposure", "degraded", "features"]
        ),
        **{k: sim[k] for k in ("fills", "funding", "equity")},
    }
    vec = pd.DataFrame(columns=["tick_time", "action", "current_exposure", "target_exposure"])
    with pytest.raises(NothingToCompare, match="nothing to compare"):
        compare(replay, vec, np.empty((0, 1)), FeatureSpec(strategies=("a",)), sim, {})


@pytest.mark.parametrize("fill", list(FillPrice))
def test_fills_follow_the_fill_price_model(fill: FillPrice) -> None:
    """The simulated venue trades a tick at the model's price: the next candle's open (default) or
    the close of the bar that just closed; past the last candle both use the last close."""
    opens = 100.0 + np.arange(4, dtype=float)
    index = pd.date_range(T0, periods=4, freq="h")
    prices = Prices(index.asi8, opens, opens + 0.5, fill)
    ticks = [T0 + H, T0 + 4 * H]  # bar 0 closed; then the last bar closed (no next candle)
    decisions = pd.DataFrame({"tick_time": ticks, "target_exposure": [0.5, 0.0]})
    fills = simulate_execution(decisions, prices, MODEL)["fills"]
    slip = 1.0 / 10_000
    want_first = 101.0 if fill is FillPrice.NEXT_OPEN else 100.5
    assert fills["price"].tolist() == [want_first * (1 + slip), 103.5 * (1 - slip)]
