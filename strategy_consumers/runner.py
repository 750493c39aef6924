"""The generic live runner: one strategy, one consumer group, one Recommendation per closed bar.

Every strategy service is this runner with a different registry entry, so adding a strategy is a
module plus a registry line. The target state machine is carried across bars in memory (warm
mode, exact by construction); after a restart, or when a bar is missing, the first bar is
computed cold from the window alone, which equals the full history on the real data for the
registry's lookbacks (docs/decisions/0004-strategy-parity.md).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import Message

from common.events import BarClosed, Recommendation, SignalEvent, Target
from common.kafka.consumer import ConsumerLoop, PoisonMessage
from common.kafka.producer import EventProducer
from common.kafka.topics import RECOMMENDATIONS, bars_topic
from common.logging import get_logger
from common.registry import StrategySpec, load_registry
from common.serde_bars import COLUMNS, BarWindow, decode_bar_window
from config import Settings
from strategy_consumers.strategies.base import Strategy

log = get_logger(__name__)

TARGETS = {1: Target.LONG, -1: Target.SHORT, 0: Target.FLAT}
#: How many recent bar targets to remember (re-deliveries of a recent bar stay warm).
STATE_BARS = 64


class RunnerError(RuntimeError):
    """The runner cannot start (unknown or disabled strategy)."""


def resolve_spec(settings: Settings, name: str) -> StrategySpec:
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    if name not in registry.names:
        raise RunnerError(f"strategy {name!r} is not in {settings.registry_path} (known: {registry.names})")
    spec = registry.get(name)
    if not spec.enabled:
        raise RunnerError(f"strategy {name!r} is disabled in {settings.registry_path}")
    return spec


def build_strategy(spec: StrategySpec) -> Strategy:
    cls = spec.load_class()
    return cls(params=spec.params, lookback_hours=spec.lookback_hours, version=spec.version)


def window_frame(bar: BarClosed | BarWindow, bars: int) -> pd.DataFrame:
    """The last ``bars`` bars of the event as the frame the strategy code expects."""
    if isinstance(bar, BarClosed):
        bar = BarWindow.from_event(bar)
    index = pd.DatetimeIndex(pd.to_datetime(bar.times[-bars:], unit="ms", utc=True), name="date")
    # Copies: the window's arrays are read-only views of the message bytes.
    data = {c: np.array(bar.columns[c][-bars:], dtype=np.float64) for c in COLUMNS}
    return pd.DataFrame(data, index=index)


class StrategyRunner:
    """Turns BarClosed events into Recommendations for one strategy."""

    def __init__(self, settings: Settings, spec: StrategySpec, producer: EventProducer) -> None:
        self.settings = settings
        self.spec = spec
        self.strategy = build_strategy(spec)
        self.producer = producer
        self.topic_out = settings.topic(RECOMMENDATIONS)
        self._tf = timedelta(minutes=spec.timeframe_minutes)
        self._bars = self.strategy.bars_needed(spec.timeframe_minutes)
        self._targets: OrderedDict[datetime, int] = OrderedDict()

    def recommendation_for(self, bar: BarClosed | BarWindow) -> Recommendation:
        if bar.timeframe != self.spec.timeframe:
            raise PoisonMessage(
                f"bar timeframe {bar.timeframe} is not {self.spec.name}'s {self.spec.timeframe}"
            )
        if bar.symbol != self.settings.symbol:
            raise PoisonMessage(f"bar symbol {bar.symbol!r} is not the configured {self.settings.symbol!r}")
        if len(bar) == 0:
            raise PoisonMessage("bar window is empty")
        window = window_frame(bar, self._bars)
        prev = self._targets.get(bar.bar_open_time - self._tf)
        if prev is None:
            log.info("cold_start", strategy=self.spec.name, bar_open_time=bar.bar_open_time.isoformat())
        result = self.strategy.recommend(window, prev_target=prev)
        self._remember(bar.bar_open_time, result.target)
        return Recommendation(
            tick_id=bar.tick_id,
            strategy=self.spec.name,
            strategy_version=self.spec.version,
            symbol=bar.symbol,
            timeframe=bar.timeframe,
            bar_close_time=bar.bar_open_time + self._tf,
            target=TARGETS[result.target],
            event=SignalEvent(result.event),
            confidence=result.confidence,
            horizon_bars=result.horizon_bars,
            indicators={k: v for k, v in result.indicators.items() if np.isfinite(v)},
            produced_at=datetime.now(UTC),
        )

    def _remember(self, bar_open_time: datetime, target: int) -> None:
        self._targets[bar_open_time] = target
        self._targets.move_to_end(bar_open_time)
        while len(self._targets) > STATE_BARS:
            self._targets.popitem(last=False)

    def handle(self, bar: BarClosed | BarWindow, _msg: Message | None = None) -> None:
        rec = self.recommendation_for(bar)
        self.producer.send(self.topic_out, rec, key=rec.tick_id)


def make_loop(settings: Settings, name: str, **loop_kwargs: Any) -> tuple[ConsumerLoop, StrategyRunner]:
    """The consumer loop of ``strategy.<name>`` on its timeframe's bars topic."""
    spec = resolve_spec(settings, name)
    producer = EventProducer(settings, f"strategy.{name}")
    runner = StrategyRunner(settings, spec, producer)
    loop = ConsumerLoop(
        settings,
        service=f"strategy.{name}",
        group_id=f"{settings.kafka.topic_prefix}strategy.{name}",
        topics=[settings.topic(bars_topic(spec.timeframe))],
        handler=runner.handle,
        producer=producer,
        expected=BarClosed,
        decoder=decode_bar_window,
        **loop_kwargs,
    )
    return loop, runner
