"""The pure arithmetic of bench/bench_peers.py (trades and returns every engine is checked against).

The bench explains each engine's return by its fill model and sizing convention; these tests pin
those conventions down on hand-computed cases, so a wrong reference cannot "explain" a wrong engine.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "peers_logic.py"
_SPEC = importlib.util.spec_from_file_location("peers_logic", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
peers_logic = importlib.util.module_from_spec(_SPEC)
sys.modules["peers_logic"] = peers_logic
_SPEC.loader.exec_module(peers_logic)


def test_entries_and_exits_are_the_target_transitions_starting_flat() -> None:
    enter, leave = peers_logic.entries_exits(np.array([1, 1, 0, 0, 1, 0, 1]))
    assert enter.tolist() == [True, False, False, False, True, False, True]
    assert leave.tolist() == [False, False, True, False, False, True, False]


def test_entries_refuse_a_short_target() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        peers_logic.entries_exits(np.array([0, -1, 0]))


def test_next_open_fills_at_the_following_bar_and_never_on_the_last() -> None:
    o, c = np.array([10.0, 11.0, 12.0]), np.array([10.5, 11.5, 12.5])
    assert peers_logic.fill_prices(o, c, "signal_close").tolist() == [10.5, 11.5, 12.5]
    nxt = peers_logic.fill_prices(o, c, "next_open")
    assert nxt[:2].tolist() == [11.0, 12.0] and np.isnan(nxt[2])
    with pytest.raises(ValueError, match="unknown fill model"):
        peers_logic.fill_prices(o, c, "mid")


def test_round_trip_without_fee_is_the_price_ratio() -> None:
    out = peers_logic.simulate_long_only(np.array([1, 1, 0]), np.array([100.0, 120.0, 150.0]), 150.0, 0.0)
    assert out.trades == 1
    assert out.final_return == pytest.approx(0.5)


def test_fee_inside_spends_equity_on_notional_plus_fee() -> None:
    # In at 100 with 1 / (100 * 1.01) units, out at 200 less 1 %: 2 * 0.99 / 1.01.
    out = peers_logic.simulate_long_only(
        np.array([1, 0]), np.array([100.0, 200.0]), 200.0, 0.01, "fee_inside"
    )
    assert out.final_return == pytest.approx(2 * 0.99 / 1.01 - 1)


def test_fee_on_top_buys_the_whole_equity_and_owes_the_fee() -> None:
    # 0.01 units at 100, 1 % of 1.0 owed; out at 200: 0.01 * 200 * 0.99 - 0.01.
    out = peers_logic.simulate_long_only(
        np.array([1, 0]), np.array([100.0, 200.0]), 200.0, 0.01, "fee_on_top"
    )
    assert out.final_return == pytest.approx(1.98 - 0.01 - 1)


def test_compounds_over_trades_and_marks_an_open_position_without_exit_fee() -> None:
    target = np.array([1, 0, 0, 1, 1])
    price = np.array([100.0, 110.0, 90.0, 50.0, 60.0])
    out = peers_logic.simulate_long_only(target, price, 80.0, 0.0)
    assert out.trades == 2
    assert out.final_return == pytest.approx(1.1 * (80.0 / 50.0) - 1)


def test_a_change_on_the_last_bar_under_next_open_is_not_filled() -> None:
    o, c = np.array([100.0, 100.0, 100.0]), np.array([100.0, 100.0, 100.0])
    out = peers_logic.simulate_long_only(
        np.array([0, 0, 1]), peers_logic.fill_prices(o, c, "next_open"), 100.0, 0.01
    )
    assert out.trades == 0
    assert out.final_return == 0.0


def test_fill_timing_alone_moves_the_return() -> None:
    o = np.array([100.0, 101.0, 120.0, 119.0])
    c = np.array([100.0, 118.0, 121.0, 119.0])
    target = np.array([1, 0, 0, 0])
    at_close = peers_logic.simulate_long_only(
        target, peers_logic.fill_prices(o, c, "signal_close"), 119.0, 0.0
    )
    at_open = peers_logic.simulate_long_only(target, peers_logic.fill_prices(o, c, "next_open"), 119.0, 0.0)
    assert at_close.trades == at_open.trades == 1
    assert at_close.final_return == pytest.approx(0.18)  # in at 100, out at 118
    assert at_open.final_return == pytest.approx(120.0 / 101.0 - 1)


def test_unknown_sizing_and_bad_fee_are_refused() -> None:
    t, p = np.array([1, 0]), np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="sizing"):
        peers_logic.simulate_long_only(t, p, 2.0, 0.0, "half")
    with pytest.raises(ValueError, match="fee"):
        peers_logic.simulate_long_only(t, p, 2.0, 1.5)


def test_close_vs_next_open_counts_only_the_bars_that_gap() -> None:
    o = np.array([100.0, 100.0, 101.0, 103.0])
    c = np.array([100.0, 100.0, 102.0, 104.0])
    # Pairs: close 100 -> open 100 (same), 100 -> 101 (100 bp), 102 -> 103 (~98 bp).
    differ, compared, mean_bp = peers_logic.close_vs_next_open(o, c)
    assert (differ, compared) == (2, 3)
    assert mean_bp == pytest.approx((100.0 + 1e4 / 102) / 2)
