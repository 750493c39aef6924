"""common.pnl: the one unrealized-P&L rule, in both units, equal to the formulas it replaced."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from common.pnl import unrealized_pnl, unrealized_pnl_scalar
from common.portfolio import Portfolio
from executor.ledger import Holding, apply_fill

prices = st.floats(min_value=1.0, max_value=1e6, allow_nan=False)
sizes = st.floats(min_value=-10.0, max_value=10.0, allow_nan=False)


def test_absolute_and_relative_values() -> None:
    assert unrealized_pnl(2.0, 100.0, 110.0) == 20.0
    assert unrealized_pnl(-2.0, 100.0, 110.0) == -20.0
    assert unrealized_pnl(0.5, 100.0, 110.0, relative=True) == 0.5 * (110.0 / 100.0 - 1)
    np.testing.assert_array_equal(
        unrealized_pnl([1.0, -1.0, 0.0], [100.0, 100.0, 100.0], [90.0, 90.0, 90.0]), [-10.0, 10.0, 0.0]
    )


def test_unknown_entry_or_mark_and_flat_value_zero_never_minus_zero() -> None:
    q = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, -1.0]
    p0 = [np.nan, 0.0, -5.0, 100.0, 100.0, 100.0, 100.0]
    mark = [110.0, 110.0, 110.0, np.nan, np.inf, 110.0, 100.0]
    for relative in (False, True):
        out = unrealized_pnl(q, p0, mark, relative=relative)
        assert out.tolist() == [0.0] * 7
        assert not np.signbit(out).any()  # -1 * (100 - 100) is -0.0; the rule says 0
    assert unrealized_pnl_scalar(1.0, None, 110.0) == 0.0
    assert unrealized_pnl_scalar(1.0, 100.0, None) == 0.0


@given(sizes, st.one_of(st.none(), prices), prices)
def test_same_bits_as_the_executor_formula_it_replaced(q: float, avg: float | None, mark: float) -> None:
    before = 0.0 if not q or avg is None else q * (mark - avg)
    assert unrealized_pnl_scalar(q, avg, mark) == before
    assert Holding(q, avg).unrealized(mark) == before


@given(st.floats(min_value=-1.0, max_value=1.0, allow_nan=False), prices, prices)
def test_same_bits_as_the_portfolio_formula_it_replaced(e: float, p0: float, p: float) -> None:
    before = e * (p / p0 - 1.0) + 0.0 if e else 0.0
    assert unrealized_pnl(e, p0, p, relative=True) == before
    assert Portfolio(e, p0).pnl(p) == before


def test_book_value_matches_cash_flows() -> None:
    """Realized plus unrealized equals cash spent plus the position marked to market."""
    h, cash = Holding(), 0.0
    for qty, price in [(0.5, 20_000.0), (0.25, 21_000.0), (-1.0, 19_000.0), (0.25, 18_500.0)]:
        h, _ = apply_fill(h, qty, price)
        cash -= qty * price
    mark = 18_000.0
    assert abs(h.realized + h.unrealized(mark) - (cash + h.quantity * mark)) < 1e-6
