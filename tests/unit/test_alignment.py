"""Which timeframes close at a tick: UTC, epoch/midnight aligned, across day boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.registry import Registry
from tick_emitter.core import is_due, plan_tick, tick_times
from tick_emitter.service import cron_trigger
from tick_emitter.synthetic import registry_of

TFS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}


def registry(*entries: tuple[str, str, int]) -> Registry:
    return registry_of(entries)


def at(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2022-03-01T00:00", {"1m", "5m", "15m", "1h", "4h", "1d"}),  # midnight: everything
        ("2022-03-01T04:00", {"1m", "5m", "15m", "1h", "4h"}),
        ("2022-03-01T05:00", {"1m", "5m", "15m", "1h"}),
        ("2022-03-01T20:00", {"1m", "5m", "15m", "1h", "4h"}),
        ("2022-03-01T23:45", {"1m", "5m", "15m"}),
        ("2022-03-01T23:55", {"1m", "5m"}),
        ("2022-03-01T23:59", {"1m"}),
        ("2022-03-27T01:00", {"1m", "5m", "15m", "1h"}),  # EU DST switch day: UTC ignores it
        ("2020-02-29T00:00", {"1m", "5m", "15m", "1h", "4h", "1d"}),  # leap day
        ("2021-12-31T23:00", {"1m", "5m", "15m", "1h"}),
        ("2022-01-01T00:00", {"1m", "5m", "15m", "1h", "4h", "1d"}),  # year boundary
    ],
)
def test_due_timeframes(when: str, expected: set[str]) -> None:
    assert {tf for tf, m in TFS.items() if is_due(at(when), m)} == expected


@given(st.integers(min_value=0, max_value=60 * 24 * 365 * 60))
def test_alignment_equals_minutes_since_midnight(minute: int) -> None:
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    since_midnight = t.hour * 60 + t.minute
    for m in TFS.values():
        assert is_due(t, m) == (since_midnight % m == 0)


def test_not_due_off_the_minute() -> None:
    assert not is_due(at("2022-03-01T00:00:30"), 1)


def test_plan_counts_1d_and_4h_ticks_over_a_day() -> None:
    reg = registry(("a", "1h", 720), ("b", "4h", 720), ("c", "1d", 720), ("d", "4h", 48), ("e", "15m", 24))
    times = tick_times(at("2022-03-01T00:00"), at("2022-03-01T23:59"), 1)
    plans = [plan_tick(t, reg) for t in times]
    fired = {tf: sum(tf in p.bars for p in plans) for tf in ("15m", "1h", "4h", "1d")}
    assert fired == {"15m": 96, "1h": 24, "4h": 6, "1d": 1}
    midnight = plans[0]
    assert [s.name for s in midnight.strategies] == ["a", "b", "c", "d", "e"]
    assert midnight.bars == {"1h": 720, "4h": 180, "1d": 30, "15m": 96}  # max lookback per timeframe
    assert midnight.earliest_start == at("2022-03-01T00:00") - timedelta(hours=720)
    assert [p.tick_time.hour for p in plans if "4h" in p.bars] == [0, 4, 8, 12, 16, 20]
    assert not plan_tick(at("2022-03-01T00:07"), reg)


def test_disabled_strategies_never_due() -> None:
    assert not plan_tick(at("2022-03-01T00:00"), registry_of([("off", "1h", 24)], enabled=False))


def test_tick_times_grid_and_bounds() -> None:
    assert tick_times(at("2022-03-01T00:01"), at("2022-03-01T01:00"), 15) == [
        at("2022-03-01T00:15"),
        at("2022-03-01T00:30"),
        at("2022-03-01T00:45"),
        at("2022-03-01T01:00"),
    ]


def test_cron_trigger_fires_on_tick_boundaries() -> None:
    trig = cron_trigger(15, second=5)
    nxt = trig.get_next_fire_time(None, at("2022-03-01T23:50:00"))
    assert nxt == at("2022-03-02T00:00:05")
    trig4h = cron_trigger(240)
    assert trig4h.get_next_fire_time(None, at("2022-03-01T05:00")) == at("2022-03-01T08:00")
