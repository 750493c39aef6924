"""The model portfolio's PnL definition (shared with the training env) and entry-price rules."""

from __future__ import annotations

import numpy as np

from common.pnl import unrealized_pnl
from common.portfolio import Portfolio, next_entry_price


def test_unrealized_pnl_is_exposure_times_return_since_entry() -> None:
    assert unrealized_pnl(0.5, 20_000.0, 22_000.0, relative=True) == 0.5 * (22_000 / 20_000 - 1)
    assert unrealized_pnl(-1.0, 20_000.0, 22_000.0, relative=True) == -1.0 * (22_000 / 20_000 - 1)
    assert unrealized_pnl(0.0, np.nan, 22_000.0, relative=True) == 0.0
    assert unrealized_pnl(0.75, np.nan, 22_000.0, relative=True) == 0.0  # no entry known yet
    vec = unrealized_pnl([0.25, -0.5, 0.0], [100.0, 100.0, np.nan], [110.0, 90.0, 95.0], relative=True)
    np.testing.assert_allclose(vec, [0.025, 0.05, 0.0])


def test_entry_price_averages_in_keeps_on_reduce_resets_on_flip_and_clears_when_flat() -> None:
    assert next_entry_price(0.0, np.nan, 0.5, 100.0) == 100.0
    assert next_entry_price(0.5, 100.0, 1.0, 110.0) == 105.0
    assert next_entry_price(1.0, 105.0, 0.25, 120.0) == 105.0
    assert next_entry_price(0.5, 100.0, -0.5, 90.0) == 90.0
    assert np.isnan(next_entry_price(0.5, 100.0, 0.0, 90.0))


def test_portfolio_round_trips_and_moves() -> None:
    p = Portfolio().moved_to(0.5, 100.0).moved_to(1.0, 110.0)
    assert p == Portfolio(1.0, 105.0)
    assert p.pnl(126.0) == 1.0 * (126.0 / 105.0 - 1)
    assert Portfolio.from_dict(p.to_dict()) == p
    assert Portfolio().moved_to(0.0, 100.0) == Portfolio(0.0, None)
    assert Portfolio().moved_to(0.5, None) == Portfolio(0.5, None)
