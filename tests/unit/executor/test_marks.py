"""Bad marks (hole 6 of issue 18): one price check, and an unknown mark never adds risk.

The venue-side halves (paper venue refusing to fill at NaN, Kraken's negative/stale/NaN mark
through CCXT) are in ``tests/integration/test_bad_marks.py``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.ids import make_intent_id, make_tick_id
from common.testkit import sample_order_intent
from config import RiskLimits
from executor.exchanges.base import NoPrice
from executor.prices import checked_price
from executor.risk import Book, RiskEngine, RiskState, Verdict

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USD:USD"
LIM = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, daily_loss_cap_usd=500.0)
TOL = 1e-9


def intent(target: float):  # type: ignore[no-untyped-def]
    tick_id = make_tick_id(SYMBOL, NOW - timedelta(seconds=2))
    return sample_order_intent(
        tick_id=tick_id,
        model_id="m",
        intent_id=make_intent_id(tick_id, "m"),
        target_exposure=target,
        created_at=NOW,
    )


@pytest.mark.parametrize(
    "value", [None, "", float("nan"), float("inf"), float("-inf"), 0.0, -5.0, "-1", "abc", "nan", [1.0]]
)
def test_unusable_prices_raise_no_price(value: object) -> None:
    with pytest.raises(NoPrice):
        checked_price(value, "test")


def test_stale_price_raises_only_with_a_timestamp_and_a_limit() -> None:
    stamped = NOW - timedelta(minutes=5)
    with pytest.raises(NoPrice, match="300s old"):
        checked_price(20_000.0, "test", stamped_at=stamped, now=NOW, max_age_s=60)
    assert checked_price(20_000.0, "test", stamped_at=stamped, now=NOW, max_age_s=600) == 20_000.0
    assert checked_price("20000.5", "test") == 20_000.5
    # a venue clock slightly ahead of ours is not staleness
    assert checked_price(1.0, "test", stamped_at=NOW + timedelta(seconds=3), now=NOW, max_age_s=60) == 1.0


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_checked_price_is_always_finite_and_positive(value: float) -> None:
    try:
        price = checked_price(value, "prop")
    except NoPrice:
        assert not (math.isfinite(value) and value > 0)
    else:
        assert math.isfinite(price) and price > 0 and price == value


def test_unknown_mark_refuses_new_risk() -> None:
    engine = RiskEngine(LIM, symbol=SYMBOL)
    bad = "kraken mark: price -5.0 is not positive"
    # adding to a long, opening from flat, and reversing: all new risk
    for pos, target in [(0.5, 1.0), (0.0, 0.5), (0.5, -0.5)]:
        plan = engine.evaluate(intent(target), Book(pos, 0.0, 0, bad), RiskState(), NOW)
        if pos and target * pos < 0:  # a reversal is cut at flat: the reducing half is allowed
            assert plan.verdict is Verdict.TRADE and plan.target_position == 0.0 and "bad_mark" in plan.reason
        else:
            assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("bad_mark"), plan.reason
            assert plan.legs == ()


def test_unknown_mark_still_lets_risk_be_reduced() -> None:
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(
        intent(0.25), Book(0.75, 0.0, 0, "paper: price nan is not finite"), RiskState(), NOW
    )
    assert plan.verdict is Verdict.TRADE and plan.legs == (-0.5,) and "bad_mark" in plan.reason


@settings(max_examples=300, deadline=None)
@given(st.floats(-3.0, 3.0, allow_nan=False), st.floats(-2.0, 2.0, allow_nan=False), st.floats(-1e5, 1e5))
def test_with_an_unknown_mark_no_plan_moves_away_from_flat(target: float, pos: float, pnl: float) -> None:
    """Whatever the (unknowable) P&L says, an unknown mark only ever lets the book move towards 0."""
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(
        intent(target), Book(pos, pnl, 0, "no mark"), RiskState(), NOW
    )
    after = pos + sum(plan.legs)
    assert abs(after) <= abs(pos) + TOL and after * pos >= -TOL
    assert plan.halt_until is None or pnl <= -LIM.daily_loss_cap_usd
