"""ManualClock: the clock executor tests run on instead of the wall clock (issue 19).

It must move only when the test moves it, never block, and refuse what would make a test lie
(naive times, time running backwards by accident).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from executor.clock import Clock, ManualClock, ReplayClock, SystemClock

START = datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC)


def test_time_stands_still_until_the_test_moves_it() -> None:
    clock = ManualClock(START)
    assert clock.now() == START
    assert clock.now() == START  # reading does not move it (the wall clock would)


def test_advance_by_seconds_or_timedelta_crosses_the_day() -> None:
    clock = ManualClock(START)
    assert clock.advance(1) == datetime(2026, 3, 3, tzinfo=UTC)
    assert clock.advance(timedelta(hours=1, milliseconds=5)) == datetime(
        2026, 3, 3, 1, 0, 0, 5000, tzinfo=UTC
    )
    assert clock.now() == datetime(2026, 3, 3, 1, 0, 0, 5000, tzinfo=UTC)


def test_sleep_advances_instead_of_blocking_and_is_recorded() -> None:
    """An hour's sleep returns at once with the clock an hour on (a wall-clock sleep would hang the
    test for an hour)."""
    clock = ManualClock(START)
    clock.sleep(3600.0)
    clock.sleep(0.5)
    assert clock.now() == START + timedelta(hours=1, seconds=0.5)
    assert clock.slept == [3600.0, 0.5]
    with pytest.raises(ValueError, match="non-negative"):
        clock.sleep(-1.0)
    assert clock.now() == START + timedelta(hours=1, seconds=0.5)


def test_only_set_goes_back() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-0.001)
    earlier = START - timedelta(days=2)
    clock.set(earlier)
    assert clock.now() == earlier


def test_times_are_tz_aware_utc() -> None:
    with pytest.raises(ValueError, match="naive"):
        ManualClock(datetime(2026, 3, 2, 10, 0))
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 3, 2, 10, 0))
    clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 3, 2, 10, 0, tzinfo=UTC) and clock.now().tzinfo is UTC


def test_manual_clock_ignores_the_intents() -> None:
    """The executor moves a clock that has ``advance_to`` (ReplayClock) to each intent's tick; a
    manual clock must not have it, or a stale intent would move 'now' to itself and look fresh."""
    assert not hasattr(ManualClock(START), "advance_to")
    assert hasattr(ReplayClock(START), "advance_to")


def test_every_clock_satisfies_the_protocol() -> None:
    clocks: list[Clock] = [SystemClock(), ReplayClock(START), ManualClock(START)]
    assert all(callable(c.now) and callable(c.sleep) for c in clocks)
    assert all(c.now().tzinfo is not None for c in clocks)
