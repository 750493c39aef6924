"""The control endpoints' token buckets, on a hand-driven clock (no sleeping, no timing)."""

from __future__ import annotations

import pytest

from bridge.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_configured_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_min=6, burst=2, clock=clock)  # one token per 10 s
    assert buckets.take("a") is None and buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(10.0)  # empty: one token is 10 s away
    clock.now += 4.0
    assert buckets.take("a") == pytest.approx(6.0)  # refused requests cost nothing
    clock.now += 6.0
    assert buckets.take("a") is None and buckets.take("a") is not None
    clock.now += 3_600.0  # a long pause refills to the burst, never beyond
    assert [buckets.take("a") is None for _ in range(3)] == [True, True, False]


def test_clients_are_counted_apart_and_memory_is_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_min=1, burst=1, max_clients=2, clock=clock)
    assert buckets.take("a") is None and buckets.take("b") is None
    assert buckets.take("a") is not None and buckets.take("b") is not None
    assert buckets.take("c") is None  # a third client evicts the least recently used ("a")
    assert buckets.take("a") is None  # back with a full bucket: one extra burst at most
    with pytest.raises(ValueError):
        TokenBuckets(rate_per_min=0, burst=1)
