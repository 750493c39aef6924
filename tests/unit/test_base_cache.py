"""The emitter's base-candle cache returns exactly what one full query would, tick after tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from common.events import to_epoch_ms
from tick_emitter.base_cache import BaseCandleCache

T0 = datetime(2022, 1, 1, tzinfo=UTC)


class Store:
    """Insert-only candle store (like the candles table) with a query counter."""

    def __init__(self) -> None:
        self.times = np.empty(0, dtype=np.int64)
        self.values = np.empty((0, 5))
        self.queries = 0

    def add(self, minute: int) -> None:
        t = to_epoch_ms(T0 + timedelta(minutes=minute))
        if t in set(self.times.tolist()):
            return
        row = np.full((1, 5), float(minute))
        order = np.argsort(np.append(self.times, t), kind="stable")
        self.times = np.append(self.times, t)[order]
        self.values = np.vstack([self.values, row])[order]

    def load(self, start: datetime, end: datetime) -> tuple[np.ndarray, np.ndarray]:
        self.queries += 1
        m = (self.times >= to_epoch_ms(start)) & (self.times < to_epoch_ms(end))
        return self.times[m], self.values[m]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.booleans()), min_size=1, max_size=40))
def test_cache_equals_full_query_as_ticks_advance(steps: list[tuple[int, int, bool]]) -> None:
    store = Store()
    for m in range(0, 300, 1):
        if m % 7:  # leave gaps: the cache must not invent candles
            store.add(m)
    cache = BaseCandleCache(store.load, 1)
    now, lookback = 300, 120
    for advance, new_candles, backfill in steps:
        for k in range(new_candles):
            store.add(now + k)
        if backfill:  # a write into the past (a CSV import filling a gap) is only seen on full reload
            cache.invalidate()
            store.add(now - 50 + 7 - (now - 50) % 7)
        now += advance
        start, end = T0 + timedelta(minutes=now - lookback), T0 + timedelta(minutes=now)
        got = cache.get(start, end)
        want_t, want_v = store.load(start, end)
        assert np.array_equal(got.times, want_t)
        assert np.array_equal(got.values, want_v)


def test_steady_state_reads_only_the_new_candles() -> None:
    store = Store()
    for m in range(1000):
        store.add(m)
    seen: list[int] = []

    def loader(start: datetime, end: datetime) -> tuple[np.ndarray, np.ndarray]:
        t, v = store.load(start, end)
        seen.append(len(t))
        return t, v

    cache = BaseCandleCache(loader, 1)
    for now in range(900, 1000):
        cache.get(T0 + timedelta(minutes=now - 720), T0 + timedelta(minutes=now))
    assert seen[0] == 720 and max(seen[1:]) == 1  # one full read, then one new candle per tick
