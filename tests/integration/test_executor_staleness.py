"""Stale and future intents through the real executor (Postgres, paper venue): hole 1 of issue 18.

Live, the executor's clock is the wall clock; in a replay it is the ReplayClock that follows the
intents' tick times; here a ManualClock stands in for the wall clock, months away from it, so the
ages below are the executor clock's and nothing else's. In every case an intent is as old as its
TICK, whatever its ``created_at`` says.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.db.models import Order
from common.db.session import make_engine
from common.events import ExecutionReport, ExecutionStatus, OrderIntent
from config import RiskLimits, Settings
from executor.clock import Clock, FixedPriceFeed, ReplayClock
from executor.exchanges.paper import PaperExchange, venue_namespace
from executor.service import Executor
from tests.standin.kit import SYMBOL, count_rows, make_intent, manual_clock

pytestmark = pytest.mark.integration
LIMITS = RiskLimits(
    max_position_btc=1.0, max_order_btc=1.0, max_orders_per_hour=100, max_intent_age_s=120, max_clock_skew_s=5
)


def _executor(settings: Settings, clock: Clock) -> Executor:
    s = settings.model_copy(update={"risk": LIMITS})
    engine = make_engine(s.database_url.get_secret_value())
    ns = s.kafka.topic_prefix
    venue = PaperExchange(
        engine, ns, FixedPriceFeed(20_000.0), symbol=SYMBOL, taker_fee_rate=0.0, slippage_bps=0.0
    )
    return Executor(s, engine, venue, clock, ns)


def _handle(ex: Executor, intent: OrderIntent) -> ExecutionReport:
    return ex.handle(intent, lambda _report: None)


def test_executor_clock_refuses_replayed_and_future_ticks(settings: Settings) -> None:
    clock = manual_clock()
    ex = _executor(settings, clock)
    now = clock.now()
    replayed = make_intent(0, 0.5, base=now - timedelta(hours=1), created_at=now)  # old tick, fresh stamp
    future = make_intent(0, 0.5, base=now + timedelta(minutes=10), created_at=now)  # bar not closed yet
    fresh = make_intent(0, 0.5, clock=clock)  # 1 s old by the executor's clock, months by the wall's
    r_old, r_future, r_fresh = _handle(ex, replayed), _handle(ex, future), _handle(ex, fresh)
    assert r_old.status is ExecutionStatus.REFUSED and r_old.reason.startswith("max_intent_age_s"), (
        r_old.reason
    )
    assert r_future.status is ExecutionStatus.REFUSED and r_future.reason.startswith("max_clock_skew_s")
    assert r_fresh.status is ExecutionStatus.FILLED and r_fresh.position_after == 0.5
    # nothing reached the venue for the two refused intents
    assert (
        count_rows(ex.engine, Order, venue_namespace(ex.namespace))
        == 1
        == count_rows(ex.engine, Order, ex.namespace)
    )


def test_replay_clock_trades_in_order_and_refuses_an_old_tick_sent_late(settings: Settings) -> None:
    """A replay a year back still trades (its clock follows the ticks); a late intent for a tick
    well before the replay's present is refused even though it was created just now."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    ex = _executor(settings, ReplayClock(datetime(1970, 1, 1, tzinfo=UTC)))
    now = datetime.now(UTC)
    steps = [make_intent(n * 60, t, base=start, created_at=now) for n, t in enumerate([0.5, -0.5, 0.0, 1.0])]
    reports = [_handle(ex, i) for i in steps]
    assert [r.status for r in reports] == [ExecutionStatus.FILLED] * 4, [r.reason for r in reports]
    assert reports[-1].position_after == 1.0
    late = make_intent(60, 0.0, base=start, model="late", created_at=now)  # tick 3 h before the present
    r_late = _handle(ex, late)
    assert r_late.status is ExecutionStatus.REFUSED and r_late.reason.startswith("max_intent_age_s")
    assert ex.exchange.fetch_position() == 1.0


def test_age_limits_are_measured_on_the_executor_clock_to_the_millisecond(settings: Settings) -> None:
    """Both limits at their edge (120 s old, 5 s ahead) pass and a millisecond beyond each refuses,
    with the clock stepped by the test: the executor asks its own clock, not the wall clock (which
    is months after these ticks and would refuse them all)."""
    clock = manual_clock()
    t = clock.now()
    ex = _executor(settings, clock)

    def tick(at: datetime, model: str, target: float) -> OrderIntent:
        return make_intent(0, target, base=at, model=model, created_at=clock.now())

    ahead_ok = _handle(ex, tick(t + timedelta(seconds=5), "ahead-ok", 0.25))
    ahead_over = _handle(ex, tick(t + timedelta(seconds=5, milliseconds=1), "ahead-over", 1.0))
    clock.advance(120)
    old_ok = _handle(ex, tick(t, "old-ok", 0.5))
    clock.advance(0.001)
    old_over = _handle(ex, tick(t, "old-over", 1.0))
    assert ahead_ok.status is ExecutionStatus.FILLED and old_ok.status is ExecutionStatus.FILLED
    assert ahead_over.status is ExecutionStatus.REFUSED and ahead_over.reason.startswith("max_clock_skew_s")
    assert old_over.status is ExecutionStatus.REFUSED and old_over.reason.startswith("max_intent_age_s")
    assert old_ok.position_after == 0.5 == ex.exchange.fetch_position()
