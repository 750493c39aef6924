"""Kill switch while paused: flattening always wins (hole 3 of issue 18).

The risk engine used to check ``trading_paused`` first, so with both switches on the flatten the
kill switch exists for was refused as "paused", while the operator had been told a flatten intent
was on its way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from common.ids import make_intent_id, make_tick_id
from common.testkit import sample_order_intent
from config import RiskLimits
from executor.risk import LOT_BTC, Book, RiskEngine, RiskState, Verdict

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USD:USD"
LIM = RiskLimits(max_position_btc=1.0, max_order_btc=0.25, daily_loss_cap_usd=500, max_orders_per_hour=3)
BOTH = RiskState(kill_switch=True, kill_reason="drill", trading_paused=True)


def flat_intent(symbol: str = SYMBOL):  # type: ignore[no-untyped-def]
    tick_id = make_tick_id(SYMBOL, NOW - timedelta(seconds=1))
    return sample_order_intent(
        tick_id=tick_id,
        model_id="operator",
        intent_id=make_intent_id(tick_id, "operator"),
        symbol=symbol,
        target_exposure=0.0,
        created_at=NOW,
    )


def test_paused_and_killed_long_position_is_flattened() -> None:
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(flat_intent(), Book(0.6, 0.0, 0), BOTH, NOW)
    assert plan.verdict is Verdict.TRADE, plan.reason
    assert plan.reason.startswith("kill_switch") and plan.target_position == 0.0
    assert sum(plan.legs) == -0.6 and all(abs(leg) <= LIM.max_order_btc for leg in plan.legs)


def test_pause_alone_still_flattens_nothing() -> None:
    paused = RiskState(trading_paused=True)
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(flat_intent(), Book(0.6, 0.0, 0), paused, NOW)
    assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("trading_paused")


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-12.0, 12.0, allow_nan=False),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(0, 500),
    st.booleans(),
    st.one_of(st.none(), st.text(min_size=1, max_size=20)),
)
def test_kill_switch_always_flattens(
    pos: float, pnl: float, orders: int, paused: bool, mark_error: str | None
) -> None:
    """Whatever else is true (paused, budget spent, loss cap hit, mark unknown), the plan goes flat."""
    state = RiskState(kill_switch=True, kill_reason="x", trading_paused=paused)
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(
        flat_intent(), Book(pos, pnl, orders, mark_error), state, NOW
    )
    after = pos + sum(plan.legs)
    assert abs(after) < LOT_BTC  # flat within one lot (rounding is towards the current position)
    assert plan.verdict is (Verdict.TRADE if plan.legs else Verdict.REFUSED)
    assert plan.reason.startswith("kill_switch")
