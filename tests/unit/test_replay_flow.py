"""Replay flow control waits for each strategy group only on the bars topic it reads.

With 4h/1d strategies registered, a 1d strategy's group never commits on the 1h topic: waiting
for it there stalled every replay after ``max_ahead`` ticks (found by the demo with the full
registry). Groups that are not a registry strategy's (a meta consumer, a tool) count on every topic.
"""

from __future__ import annotations

from config import load_settings
from tick_emitter.replay import _topics_read_by
from tick_emitter.synthetic import registry_of


def test_each_strategy_group_is_waited_for_on_its_own_timeframe_only() -> None:
    settings = load_settings(kafka={"topic_prefix": "bt.x."})
    registry = registry_of([("h1", "1h", 720), ("h4", "4h", 720), ("d1", "1d", 720)])
    groups = ["bt.x.strategy.h1", "bt.x.strategy.h4", "bt.x.strategy.d1", "bt.x.meta-consumer"]
    reads = _topics_read_by(settings, registry, groups)
    assert reads == {
        "bt.x.strategy.h1": frozenset({"bt.x.market.bars.1h"}),
        "bt.x.strategy.h4": frozenset({"bt.x.market.bars.4h"}),
        "bt.x.strategy.d1": frozenset({"bt.x.market.bars.1d"}),
    }
