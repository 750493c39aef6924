"""Property tests of the pure risk engine: limits hold for any intent, book and switch state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from common.ids import make_intent_id, make_tick_id
from common.testkit import sample_order_intent
from config import RiskLimits
from executor.risk import LOT_BTC, Book, RiskEngine, RiskState, Verdict, next_utc_midnight, split_legs

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USD:USD"
TOL = 1e-9


@st.composite
def limits(draw: st.DrawFn) -> RiskLimits:
    max_pos = draw(st.floats(0.001, 10.0))
    max_order = draw(st.floats(0.0001, 1.0).map(lambda f: f * max_pos).filter(lambda x: x >= 0.0001))
    return RiskLimits(
        max_position_btc=max_pos,
        max_order_btc=max_order,
        daily_loss_cap_usd=draw(st.floats(1.0, 10_000.0)),
        max_orders_per_hour=draw(st.integers(1, 50)),
        max_intent_age_s=draw(st.floats(1.0, 600.0)),
    )


def intent(target: float, age_s: float = 1.0):  # type: ignore[no-untyped-def]
    """An intent for the tick ``age_s`` seconds before NOW (staleness is judged by the tick)."""
    tick = NOW - timedelta(seconds=age_s)
    return sample_order_intent(
        target_exposure=target,
        tick_id=make_tick_id(SYMBOL, tick),
        model_id="m",
        intent_id=make_intent_id(make_tick_id(SYMBOL, tick), "m"),
        created_at=tick,
    )


targets = st.floats(-3.0, 3.0, allow_nan=False)
positions = st.floats(-12.0, 12.0, allow_nan=False)
states = st.builds(
    RiskState,
    kill_switch=st.booleans(),
    trading_paused=st.booleans(),
    halted_until=st.one_of(st.none(), st.just(NOW + timedelta(hours=1)), st.just(NOW - timedelta(hours=1))),
)


@settings(max_examples=400, deadline=None)
@given(limits(), targets, positions, st.floats(-20_000, 20_000), st.integers(0, 60), states)
def test_limits_always_hold(
    lim: RiskLimits, target: float, pos: float, pnl: float, orders: int, state: RiskState
) -> None:
    engine = RiskEngine(lim, symbol=SYMBOL)
    plan = engine.evaluate(intent(target), Book(pos, pnl, orders), state, NOW)
    after = pos + sum(plan.legs)
    assert abs(after - plan.target_position) < 1e-6
    # position limit: never beyond the limit, or (when already beyond) never further out
    assert abs(after) <= max(lim.max_position_btc, abs(pos)) + TOL
    if abs(pos) <= lim.max_position_btc:
        assert abs(after) <= lim.max_position_btc + TOL
    # order size and lot
    for leg in plan.legs:
        assert 0 < abs(leg) <= lim.max_order_btc + TOL
        assert abs(round(abs(leg) / LOT_BTC) * LOT_BTC - abs(leg)) < 1e-9
    if plan.verdict is not Verdict.TRADE:
        assert plan.legs == ()
    else:
        assert plan.legs
    if state.kill_switch:  # wins over a pause: flattening is always allowed
        assert abs(after) <= abs(pos) + TOL and after * pos >= -TOL  # only towards flat
        assert abs(after) < LOT_BTC or plan.verdict is Verdict.TRADE
    elif state.trading_paused:
        assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("trading_paused")
    else:
        # hourly budget (kill-switch flattening is exempt)
        assert len(plan.legs) <= max(0, lim.max_orders_per_hour - orders)
        running = state.halted_until is not None and state.halted_until > NOW
        halted = running or pnl <= -lim.daily_loss_cap_usd
        if halted:  # only risk reduction
            assert abs(after) <= abs(pos) + TOL and after * pos >= -TOL


@settings(max_examples=200, deadline=None)
@given(limits(), targets, positions, st.floats(0, 10_000))
def test_stale_intents_refused(lim: RiskLimits, target: float, pos: float, extra: float) -> None:
    plan = RiskEngine(lim, symbol=SYMBOL).evaluate(
        intent(target, age_s=lim.max_intent_age_s + 0.5 + extra), Book(pos, 0.0, 0), RiskState(), NOW
    )
    assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("max_intent_age_s")


@settings(max_examples=300, deadline=None)
@given(st.floats(-25.0, 25.0, allow_nan=False), st.floats(0.005, 5.0))
def test_split_legs_cover_the_move(delta: float, max_order: float) -> None:
    legs = split_legs(delta, max_order)
    total = sum(legs)
    assert abs(total) <= abs(delta) + TOL  # rounding is towards the current position
    assert abs(delta) - abs(total) < LOT_BTC + 1e-9  # and loses less than one lot
    assert all(abs(leg) <= max(max_order, LOT_BTC) + TOL and leg * delta > 0 for leg in legs)


LIM = RiskLimits(max_position_btc=1.0, max_order_btc=0.25, daily_loss_cap_usd=1000, max_orders_per_hour=5)


def test_large_move_is_split() -> None:
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(intent(1.0), Book(-0.5, 0, 0), RiskState(), NOW)
    assert plan.verdict is Verdict.TRADE and plan.legs == (0.25,) * 5 and "max_order_btc" in plan.reason


def test_hour_budget_limits_legs_then_refuses() -> None:
    engine = RiskEngine(LIM, symbol=SYMBOL)
    plan = engine.evaluate(intent(1.0), Book(-0.5, 0, 3), RiskState(), NOW)
    assert plan.legs == (0.25, 0.25) and "max_orders_per_hour" in plan.reason
    plan = engine.evaluate(intent(1.0), Book(-0.5, 0, 5), RiskState(), NOW)
    assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("max_orders_per_hour")


def test_daily_loss_cap_halts_new_risk_until_midnight() -> None:
    engine = RiskEngine(LIM, symbol=SYMBOL)
    plan = engine.evaluate(intent(1.0), Book(0.5, -1000.0, 0), RiskState(), NOW)
    assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("daily_loss_cap_usd")
    assert plan.halt_until == next_utc_midnight(NOW) == datetime(2026, 3, 2, tzinfo=UTC)
    plan = engine.evaluate(intent(-1.0), Book(0.5, -1000.0, 0), RiskState(), NOW)
    assert plan.verdict is Verdict.TRADE and plan.target_position == 0.0  # reversal clipped to flat
    later = RiskState(halted_until=plan.halt_until)
    assert engine.evaluate(intent(1.0), Book(0.0, 0.0, 0), later, NOW).verdict is Verdict.REFUSED
    assert plan.halt_until is not None
    fresh = sample_order_intent(
        target_exposure=1.0, tick_id=make_tick_id(SYMBOL, plan.halt_until), created_at=plan.halt_until
    )
    assert engine.evaluate(fresh, Book(0.0, 0.0, 0), later, plan.halt_until).verdict is Verdict.TRADE


def test_kill_switch_flattens_then_refuses() -> None:
    engine = RiskEngine(LIM, symbol=SYMBOL)
    state = RiskState(kill_switch=True, kill_reason="test")
    plan = engine.evaluate(intent(1.0, age_s=10_000), Book(0.6, 0, 99), state, NOW)
    assert plan.verdict is Verdict.TRADE and sum(plan.legs) == -0.6 and plan.target_position == 0.0
    plan = engine.evaluate(intent(1.0), Book(0.0, 0, 0), state, NOW)
    assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("kill_switch")


def test_other_symbol_rejected_and_noop() -> None:
    engine = RiskEngine(LIM, symbol=SYMBOL)
    bad = sample_order_intent(symbol="ETH/USD:USD", tick_id=make_tick_id(SYMBOL, NOW), created_at=NOW)
    assert engine.evaluate(bad, Book(0, 0, 0), RiskState(), NOW).verdict is Verdict.REJECTED
    assert engine.evaluate(intent(0.5), Book(0.5, 0, 0), RiskState(), NOW).verdict is Verdict.NOOP


@settings(max_examples=150, deadline=None)
@given(
    limits(),
    st.lists(st.tuples(targets, st.booleans(), st.floats(-5_000, 5_000)), min_size=1, max_size=30),
)
def test_position_stays_within_limits_over_a_sequence(
    lim: RiskLimits, steps: list[tuple[float, bool, float]]
) -> None:
    """Applying plan after plan (as the executor does) never leaves the position limit."""
    engine = RiskEngine(lim, symbol=SYMBOL)
    pos, orders = 0.0, 0
    for target, kill, pnl in steps:
        plan = engine.evaluate(intent(target), Book(pos, pnl, orders), RiskState(kill_switch=kill), NOW)
        pos = round(pos + sum(plan.legs), 8)
        orders += len(plan.legs)
        assert abs(pos) <= lim.max_position_btc + TOL
