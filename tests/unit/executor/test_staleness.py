"""Stale and future intents: the risk engine judges an intent by the TICK it decides.

Hole 1 of issue 18: the age used to be ``now - created_at``, and ``created_at`` is whatever the
writer put there, so a replayed or delayed intent for an old tick passed with a fresh stamp, and a
tick in the future (negative age) passed too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.ids import make_intent_id, make_tick_id, parse_tick_id
from common.testkit import sample_order_intent
from config import RiskLimits
from executor.risk import Book, RiskEngine, RiskState, Verdict

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "BTC/USD:USD"
LIM = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, max_intent_age_s=120.0, max_clock_skew_s=5.0)


def for_tick(tick: datetime, *, created_at: datetime, target: float = 0.5):  # type: ignore[no-untyped-def]
    tick_id = make_tick_id(SYMBOL, tick)
    return sample_order_intent(
        tick_id=tick_id,
        model_id="m",
        intent_id=make_intent_id(tick_id, "m"),
        target_exposure=target,
        created_at=created_at,
    )


def test_replayed_intent_for_an_old_tick_is_refused_despite_a_fresh_created_at() -> None:
    old = for_tick(NOW - timedelta(hours=3), created_at=NOW)  # re-sent now, decided 3 h ago
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(old, Book(0.0, 0.0, 0), RiskState(), NOW)
    assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("max_intent_age_s")
    assert plan.legs == ()


def test_tick_in_the_future_is_refused() -> None:
    ahead = for_tick(NOW + timedelta(minutes=10), created_at=NOW)
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(ahead, Book(0.0, 0.0, 0), RiskState(), NOW)
    assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("max_clock_skew_s")


def test_an_old_created_at_does_not_matter_when_the_tick_is_fresh() -> None:
    """created_at is the writer's clock (a replay's meta consumer runs years later): not evidence."""
    fresh = for_tick(NOW - timedelta(seconds=30), created_at=NOW - timedelta(days=400))
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(fresh, Book(0.0, 0.0, 0), RiskState(), NOW)
    assert plan.verdict is Verdict.TRADE


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-3_600.0, 7_200.0, allow_nan=False),
    st.floats(1.0, 600.0),
    st.floats(0.0, 60.0),
    st.floats(-86_400.0, 86_400.0, allow_nan=False),
)
def test_age_window_is_exactly_minus_skew_to_max_age(
    age_s: float, max_age: float, skew: float, created_offset_s: float
) -> None:
    """Fresh iff -skew <= now - tick <= max_age, whatever created_at says."""
    lim = LIM.model_copy(update={"max_intent_age_s": max_age, "max_clock_skew_s": skew})
    tick = NOW - timedelta(seconds=age_s)
    intent = for_tick(tick, created_at=NOW + timedelta(seconds=created_offset_s))
    plan = RiskEngine(lim, symbol=SYMBOL).evaluate(intent, Book(0.0, 0.0, 0), RiskState(), NOW)
    real_age = (NOW - parse_tick_id(intent.tick_id)[1]).total_seconds()  # the id keeps milliseconds
    if real_age > max_age:
        assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("max_intent_age_s")
    elif real_age < -skew:
        assert plan.verdict is Verdict.REFUSED and plan.reason.startswith("max_clock_skew_s")
    else:
        assert plan.verdict is Verdict.TRADE


@pytest.mark.parametrize("tick_offset", [timedelta(hours=-5), timedelta(hours=5)])
def test_kill_switch_flattens_whatever_the_tick_age(tick_offset: timedelta) -> None:
    """Getting out is never blocked by the age check (an operator's FLAT can sit in a backlog)."""
    intent = for_tick(NOW + tick_offset, created_at=NOW, target=0.0)
    plan = RiskEngine(LIM, symbol=SYMBOL).evaluate(
        intent, Book(0.7, 0.0, 0), RiskState(kill_switch=True, kill_reason="drill"), NOW
    )
    assert plan.verdict is Verdict.TRADE and plan.target_position == 0.0


def test_config_defaults_and_validation() -> None:
    lim = RiskLimits()
    assert lim.max_intent_age_s == 120.0 and lim.max_clock_skew_s == 5.0
    with pytest.raises(ValueError, match="max_clock_skew_s"):
        RiskLimits(max_clock_skew_s=-1.0)
