"""Replay: publish a historical range of ticks into a separate topic namespace, fast and faithful.

The range is read once (DB or CSV) into numpy arrays and every tick's windows are sliced from
them with the same ``plan_tick``/``prepare_bars``/``build_events`` the live path uses, so a replayed
BarClosed is identical to the live one. ``published_at`` is set to the tick time (not the wall
clock) so two replays of one range publish identical TickPlans too.

Flow control: ``max_ahead`` keeps the replay at most N ticks ahead of the slowest named consumer
group's committed offset on the bars topics; ``speed`` caps the rate in ticks per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import numpy as np
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from common.bar_stream import BarChain
from common.health import HEALTH
from common.kafka.configuration import admin_config, consumer_config
from common.kafka.producer import EventProducer
from common.kafka.topics import bars_topic, ensure_topics, topic_specs
from common.logging import get_logger
from common.registry import Registry
from common.shutdown import GracefulShutdown
from common.timeframes import parse_timeframe
from config import Settings
from producers.sources import CsvSource
from producers.validation import validate_candles
from tick_emitter.core import BaseCandles, build_events, candidate_step, plan_tick, prepare_bars, tick_times
from tick_emitter.emitter import publish_tick
from tick_emitter.exogenous import CachedDbFeed, ExogenousFeed, attach_exogenous, exogenous_needs

log = get_logger(__name__)
T = TypeVar("T")


class ReplayRefused(ValueError):
    """The replay would write into the live namespace (empty topic prefix)."""


def check_namespace(settings: Settings) -> str:
    prefix = settings.kafka.topic_prefix
    if not prefix:
        raise ReplayRefused("refusing to replay into the live namespace: use a prefix like 'replay.r1.'")
    return prefix


def base_from_csv(path: str, timeframe_minutes: int, now: datetime) -> BaseCandles:
    """Validated candles of a CSV as arrays (bad rows dropped exactly as an import would)."""
    source = CsvSource(path)
    if parse_timeframe(source.timeframe) != timeframe_minutes:
        raise ValueError(f"{path} holds {source.timeframe} candles; MIN_TIMEFRAME is {timeframe_minutes}m")
    raw = source.fetch("", source.timeframe, datetime.fromtimestamp(0, tz=now.tzinfo), now)
    accepted = validate_candles(raw, timeframe_minutes, now).accepted
    times = np.fromiter((c.open_time_ms for c in accepted), dtype=np.int64, count=len(accepted))
    values = np.array([c.values() for c in accepted], dtype=np.float64).reshape(-1, 5)
    return BaseCandles(times, values, timeframe_minutes)


def _retry(call: Callable[[], T], seconds: float = 15.0) -> T:
    """Metadata calls right after topic creation can fail until a leader is elected; wait it out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _topics_read_by(
    settings: Settings, registry: Registry, groups: Sequence[str]
) -> dict[str, frozenset[str]]:
    """The bars topic each strategy group reads (its registry timeframe's); other groups: all topics."""
    out = {}
    for spec in registry.enabled:
        topic = frozenset({settings.topic(bars_topic(spec.timeframe))})
        for group in groups:
            if group.endswith(f"strategy.{spec.name}"):
                out[group] = topic
    return out


class FlowControl:
    """Waits while the replay is more than ``max_ahead`` messages ahead of any named group's commits."""

    def __init__(
        self,
        settings: Settings,
        groups: Sequence[str],
        topics: Sequence[str],
        max_ahead: int,
        reads: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.max_ahead = max_ahead
        self.topics = list(topics)
        self._consumers = [Consumer(consumer_config(settings, g)) for g in groups]
        #: Per group, the topics it consumes (default: all). A 1d strategy's group never commits on
        #: the 1h topic, so waiting for it there would stall the replay after ``max_ahead`` ticks.
        self._reads = [(reads or {}).get(g, frozenset(self.topics)) for g in groups]
        self._base: dict[str, int] = {}
        self._sent: dict[str, int] = dict.fromkeys(self.topics, 0)
        self._floor: dict[str, int] = {}
        probe = Consumer(consumer_config(settings, "replay-flow-probe"))
        for topic in self.topics:
            _, high = _retry(partial(probe.get_watermark_offsets, TopicPartition(topic, 0), timeout=10))
            self._base[topic] = high
            self._floor[topic] = high
        probe.close()

    def sent(self, topic: str) -> None:
        self._sent[topic] += 1

    def _committed_floor(self, topic: str) -> int:
        lows = []
        for c, reads in zip(self._consumers, self._reads, strict=True):
            if topic not in reads:
                continue
            (tp,) = _retry(partial(c.committed, [TopicPartition(topic, 0)], timeout=10))
            lows.append(max(tp.offset, 0))
        return min(lows, default=1 << 62)

    def wait(self, shutdown: GracefulShutdown) -> float:
        """Block until every topic is within ``max_ahead``; returns the seconds spent waiting."""
        waited = 0.0
        for topic in self.topics:
            produced = self._base[topic] + self._sent[topic]
            while produced - self._floor[topic] > self.max_ahead and not shutdown.requested:
                HEALTH.beat()  # waiting for slow consumers on purpose is not being wedged
                try:
                    floor = self._committed_floor(topic)
                except KafkaException as exc:
                    # The broker stalls (an outage): keep waiting rather than die; the replay
                    # goes on by itself once the group's commits can be read again.
                    log.warning("replay_flow_control_unavailable", topic=topic, error=str(exc))
                    floor = self._floor[topic]
                self._floor[topic] = max(self._floor[topic], floor)
                if produced - self._floor[topic] > self.max_ahead:
                    time.sleep(0.02)
                    waited += 0.02
        return waited

    def close(self) -> None:
        for c in self._consumers:
            c.close()


@dataclass
class ReplayStats:
    ticks: int = 0
    bars: int = 0
    degraded: int = 0
    bytes: int = 0
    seconds: float = 0.0
    waited_s: float = 0.0

    @property
    def ticks_per_s(self) -> float:
        return self.ticks / self.seconds if self.seconds else 0.0


def replay(
    settings: Settings,
    registry: Registry,
    base: BaseCandles,
    start: datetime,
    end: datetime,
    *,
    producer: EventProducer | None = None,
    speed: float | None = None,
    max_ahead: int | None = None,
    groups: Sequence[str] = (),
    deadline: timedelta = timedelta(seconds=30),
    shutdown: GracefulShutdown | None = None,
    exogenous: ExogenousFeed | None = None,
) -> ReplayStats:
    """Publish every tick with something due in ``[start, end]`` into the settings' namespace.

    Strategies that declare exogenous inputs get them on their bars, cut at each tick, from
    ``exogenous`` (default: the settings' database, held in memory and read ahead a month of
    publications at a time; the stored history is not re-checked for late rows: ``CachedDbFeed``).
    """
    namespace = check_namespace(settings)
    needs = exogenous_needs(registry)
    owned_feed: CachedDbFeed | None = None
    if needs and exogenous is None:
        from common.db.session import make_engine

        exogenous = owned_feed = CachedDbFeed(
            make_engine(settings.database_url.get_secret_value()),
            needs,
            refresh_s=None,
            ahead=timedelta(days=30),
        )
    ensure_topics(AdminClient(admin_config(settings)), topic_specs(settings, registry.timeframes))
    shutdown = shutdown or GracefulShutdown()
    own = producer is None
    producer = producer or EventProducer(settings, "tick-emitter-replay", linger_ms=50, compression="zstd")
    topics = [settings.topic(bars_topic(tf)) for tf in registry.timeframes]
    flow = (
        FlowControl(settings, groups, topics, max_ahead, _topics_read_by(settings, registry, groups))
        if groups and max_ahead is not None
        else None
    )
    stats = ReplayStats()
    chain = BarChain(settings.bar_keyframe_hours)
    started = time.perf_counter()
    try:
        for t in tick_times(start, end, candidate_step(registry, settings.global_tick_minutes)):
            HEALTH.beat()  # liveness (/healthz/live): the replay loop is turning
            if shutdown.requested:
                log.warning("replay_interrupted", at=t.isoformat())
                break
            plan = plan_tick(t, registry)
            if not plan:
                continue
            windows = prepare_bars(base, t, plan)
            tick, bars, degraded = build_events(
                settings.symbol, plan, windows, published_at=t, deadline=deadline, namespace=namespace
            )
            stats.degraded += bool(degraded)
            if not bars:
                continue
            if needs and exogenous is not None:
                bars = attach_exogenous(bars, plan, needs, exogenous)
            if flow is not None:
                stats.waited_s += flow.wait(shutdown)
            publish_tick(producer, settings, tick, bars, fast=True, chain=chain)
            if chain.awaiting_keyframe():
                producer.flush()  # a keyframe's offset is what the next continuations name
            if flow is not None:
                for bar in bars:
                    flow.sent(settings.topic(bars_topic(bar.timeframe)))
            stats.ticks += 1
            stats.bars += len(bars)
            stats.bytes += sum(len(b) for b in bars) * 48  # whole windows, 8-byte time + 5 doubles per bar
            if speed:
                ahead = stats.ticks / speed - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        stats.seconds = time.perf_counter() - started
        if flow is not None:
            flow.close()
        if owned_feed is not None:
            owned_feed.engine.dispose()
        if own:
            producer.close()
    log.info(
        "replay_done",
        namespace=namespace,
        ticks=stats.ticks,
        bars=stats.bars,
        degraded=stats.degraded,
        seconds=round(stats.seconds, 3),
        ticks_per_s=round(stats.ticks_per_s, 1),
    )
    return stats
