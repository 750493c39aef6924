"""When ticks become ready: completeness, deadlines, tick order, early and late recommendations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.ids import make_tick_id
from meta_consumer.join import Arrival, Joiner, PendingTick

T0 = datetime(2022, 8, 1, tzinfo=UTC)
SYMBOL = "BTC/USD:USD"


def tick(
    i: int, due: tuple[str, ...] = ("a", "b"), deadline: float = 100.0, bar: bool = False
) -> PendingTick:
    t = T0 + timedelta(hours=i)
    return PendingTick(make_tick_id(SYMBOL, t), t, frozenset(due), bar, deadline, 0.0)


def test_complete_when_every_due_strategy_answered() -> None:
    j = Joiner()
    t1 = tick(1)
    j.add_plan(t1)
    assert j.add_recommendation(t1.tick_id, "a") is Arrival.PENDING
    assert j.ready(now=0.0) == []
    j.add_recommendation(t1.tick_id, "b")
    [r] = j.ready(now=0.0)
    assert (r.tick, r.timed_out) == (t1, False)


def test_deadline_makes_an_incomplete_tick_ready_as_timed_out() -> None:
    j = Joiner()
    t1 = tick(1, deadline=10.0)
    j.add_plan(t1)
    j.add_recommendation(t1.tick_id, "a")
    assert j.ready(now=9.9) == []
    [r] = j.ready(now=10.0)
    assert r.timed_out
    assert j.next_deadline() == 10.0


def test_recommendations_before_their_plan_count() -> None:
    j = Joiner()
    t1 = tick(1)
    assert j.add_recommendation(t1.tick_id, "a") is Arrival.EARLY
    assert j.add_recommendation(t1.tick_id, "b") is Arrival.EARLY
    j.add_plan(t1)
    assert [r.tick for r in j.ready(0.0)] == [t1]
    j2 = Joiner()
    j2.add_plan(t1, answered={"a", "b"})  # after a restart: what the database already holds
    assert [r.tick for r in j2.ready(0.0)] == [t1]


def test_ticks_are_released_in_tick_order_only() -> None:
    j = Joiner()
    t1, t2 = tick(1, deadline=50.0), tick(2, deadline=60.0)
    j.add_plan(t2)
    j.add_plan(t1)
    for s in ("a", "b"):
        j.add_recommendation(t2.tick_id, s)
    assert j.ready(now=0.0) == []  # t2 is complete but t1 is older and still waiting
    assert [(r.tick, r.timed_out) for r in j.ready(now=50.0)] == [(t1, True), (t2, False)]


def test_bar_of_the_decision_timeframe_is_required_when_due() -> None:
    j = Joiner()
    t1 = tick(1, bar=True)
    j.add_plan(t1)
    for s in ("a", "b"):
        j.add_recommendation(t1.tick_id, s)
    assert j.ready(0.0) == []
    j.add_bar(t1.tick_id)
    assert len(j.ready(0.0)) == 1


def test_after_a_decision_its_recommendations_are_late_and_replays_of_its_plan_ignored() -> None:
    j = Joiner()
    t1, t2 = tick(1), tick(2)
    j.add_plan(t1)
    j.add_plan(t2)
    j.mark_decided(t1.tick_id, t1.tick_time)
    assert j.add_recommendation(t1.tick_id, "b") is Arrival.LATE
    assert j.add_plan(t1) is False
    assert list(j.pending) == [t2.tick_id]
    assert t1.tick_id not in j.answered
