"""Paper venue and ledger arithmetic against independent recomputations."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from common.events import OrderSide
from common.order_ids import MAX_CLIENT_ID_LEN, client_order_id
from executor.costs import funding_amount, slipped_price, taker_fee
from executor.ledger import Holding, apply_fill


def test_slippage_is_adverse_and_in_bps() -> None:
    assert slipped_price(20_000.0, OrderSide.BUY, 1.0) == 20_000.0 * 1.0001
    assert slipped_price(20_000.0, OrderSide.SELL, 2.5) == 20_000.0 * (1 - 0.00025)
    assert slipped_price(20_000.0, OrderSide.BUY, 0.0) == 20_000.0


def test_taker_fee_is_five_bps_of_notional() -> None:
    # 0.3 BTC at 21,000 USD: notional 6,300 USD, 0.05 % = 3.15 USD
    assert abs(taker_fee(0.3, 21_000.0, 0.0005) - 3.15) < 1e-9
    assert taker_fee(-0.3, 21_000.0, 0.0005) == taker_fee(0.3, 21_000.0, 0.0005)


def test_funding_sign_longs_pay_positive_rate() -> None:
    # 0.5 BTC long at 20,000 with 0.00125 %/h: pays 0.125 USD per hour
    assert abs(funding_amount(0.5, 20_000.0, 0.0000125) + 0.125) < 1e-12
    assert funding_amount(-0.5, 20_000.0, 0.0000125) > 0
    assert funding_amount(0.0, 20_000.0, 0.0000125) == 0


fills = st.lists(
    st.tuples(
        st.integers(-5000, 5000).filter(bool).map(lambda lots: lots / 10_000),
        st.floats(10_000, 70_000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fills, st.floats(10_000, 70_000))
def test_average_cost_ledger_matches_cash_flows(seq: list[tuple[float, float]], mark: float) -> None:
    """realized + unrealized must equal the trades' cash flows plus the position marked to market."""
    h = Holding()
    realized_sum = 0.0
    for qty, price in seq:
        h, r = apply_fill(h, qty, price)
        realized_sum += r
    position = sum(q for q, _ in seq)
    cash = -sum(q * p for q, p in seq)
    assert abs(h.quantity - position) < 1e-7
    assert abs(h.realized - realized_sum) < 1e-6
    assert abs((h.realized + h.unrealized(mark)) - (cash + position * mark)) < 1e-4 * (1 + abs(cash))


def test_reversal_through_zero_reopens_at_fill_price() -> None:
    h, r = apply_fill(Holding(), 0.5, 20_000.0)
    h, r = apply_fill(h, -0.8, 21_000.0)
    assert abs(r - 500.0) < 1e-9 and abs(h.quantity + 0.3) < 1e-12 and h.avg_price == 21_000.0


def test_client_order_ids_deterministic_unique_and_short() -> None:
    a = client_order_id("live", "BTC/USD:USD|2022-08-20T00:00Z|ppo", 0)
    assert a == client_order_id("live", "BTC/USD:USD|2022-08-20T00:00Z|ppo", 0)
    assert uuid.UUID(a).version == 5 and len(a) <= MAX_CLIENT_ID_LEN
    others = {
        client_order_id("live", "BTC/USD:USD|2022-08-20T00:00Z|ppo", 1),
        client_order_id("replay.r1.", "BTC/USD:USD|2022-08-20T00:00Z|ppo", 0),
        client_order_id("live", "BTC/USD:USD|2022-08-20T00:01Z|ppo", 0),
    }
    assert a not in others and len(others) == 3


@given(st.text(min_size=1, max_size=200), st.integers(0, 100))
def test_client_order_id_shape(intent_id: str, leg: int) -> None:
    cid = client_order_id("ns", intent_id, leg)
    assert len(cid) == 36 and all(c in "0123456789abcdef-" for c in cid)
