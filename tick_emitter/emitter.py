"""The live emitter: sync, find the ticks not yet published, publish each exactly once, in order.

One code path serves the on-time tick and the catch-up after downtime: "pending" is every grid
time after the last recorded tick up to now, so a normal tick is simply a catch-up of length one.
Exactly-once: a tick is recorded in ``ticks`` only after Kafka acknowledged its messages, and
ticks already recorded are never sent again. The only window for a duplicate is a crash between
the acknowledgement and the insert; the deterministic tick_id makes that duplicate harmless.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from confluent_kafka import Message
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine, select, text
from sqlalchemy.dialects.postgresql import insert

from common.bar_stream import BarChain
from common.db.models import LIVE_NAMESPACE, Tick
from common.events import BarClosed, TickPlan, to_epoch_ms
from common.ids import make_tick_id
from common.kafka.producer import EventProducer
from common.kafka.topics import TICKS, bars_topic
from common.logging import get_logger
from common.metrics import HEARTBEAT
from common.registry import Registry
from common.serde_bars import encode_bar
from config import Settings
from producers import store
from producers.candles import CandleSource
from producers.sync import sync_market_data
from tick_emitter.base_cache import BaseCandleCache
from tick_emitter.core import (
    BarPayload,
    BaseCandles,
    DuePlan,
    build_events,
    candidate_step,
    plan_tick,
    prepare_bars,
    tick_times,
)
from tick_emitter.exogenous import CachedDbFeed, ExogenousFeed, attach_exogenous, exogenous_needs

log = get_logger(__name__)

TICKS_PUBLISHED = Counter("btcmeta_ticks_published_total", "Ticks published", ["namespace"])
TICKS_DEGRADED = Counter("btcmeta_ticks_degraded_total", "Timeframes not published (gap)", ["timeframe"])
TICK_OVERRUNS = Counter("btcmeta_tick_overruns_total", "Ticks skipped because the previous still ran")
TICK_SECONDS = Histogram("btcmeta_tick_seconds", "Wall time of one scheduler tick (sync + publish)")
LAST_TICK = Gauge("btcmeta_last_tick_timestamp_seconds", "Tick time of the last published tick")


def db_namespace(settings: Settings) -> str:
    """Row namespace in ``ticks``: 'live' for the live prefix, the topic prefix otherwise."""
    return settings.kafka.topic_prefix or LIVE_NAMESPACE


def last_recorded_tick(engine: Engine, namespace: str, symbol: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(
            select(Tick.tick_time)
            .where(Tick.namespace == namespace, Tick.symbol == symbol)
            .order_by(Tick.tick_time.desc())
            .limit(1)
        ).scalar_one_or_none()


def recorded_tick_ids(engine: Engine, namespace: str, tick_ids: list[str]) -> set[str]:
    if not tick_ids:
        return set()
    with engine.connect() as conn:
        query = select(Tick.tick_id).where(Tick.namespace == namespace, Tick.tick_id.in_(tick_ids))
        rows = conn.execute(query)
        return {r[0] for r in rows}


def record_tick(engine: Engine, namespace: str, tick: TickPlan) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Tick)
            .values(
                namespace=namespace,
                tick_id=tick.tick_id,
                symbol=tick.symbol,
                tick_time=tick.tick_time,
                due_timeframes=list(tick.due_timeframes),
                due_strategies=[d.name for d in tick.due_strategies],
            )
            .on_conflict_do_nothing()
        )


def publish_tick(
    producer: EventProducer,
    settings: Settings,
    tick: TickPlan,
    bars: list[BarPayload],
    *,
    fast: bool = False,
    chain: BarChain | None = None,
) -> None:
    """TickPlan first (the meta consumer must know what to wait for), then the bars; keyed by tick_id.

    ``fast`` (replay) writes the bars with the byte-identical direct encoder instead of building
    validated BarClosed objects; the live path keeps the generic, validating one. With a
    ``chain``, a bar continues the topic's previous message where it can (ADR 0028); the caller
    resets the chain if anything sent here is not delivered.
    """
    producer.send(settings.topic(TICKS), tick, key=tick.tick_id)
    tick_ms = to_epoch_ms(tick.tick_time)
    for bar in bars:
        topic = settings.topic(bars_topic(bar.timeframe))
        on_delivered = None
        if chain is not None:
            start, link = chain.link(topic, bar.tick_id, tick_ms, bar.times, bar.values)
            bar = replace(bar, times=bar.times[start:], values=bar.values[start:], link=link)
            if link.keyframe_offset < 0:
                on_delivered = _keyframe_delivered(chain, topic, bar.tick_id)
        if fast:
            producer.send_raw(
                topic,
                encode_bar(bar),
                tick.tick_id,
                {"schema": BarClosed.SCHEMA_NAME, "producer": "tick-emitter"},
                on_delivered=on_delivered,
            )
        else:
            producer.send(topic, bar.to_event(), key=tick.tick_id, on_delivered=on_delivered)


def _keyframe_delivered(chain: BarChain, topic: str, tick_id: str) -> Callable[[Message], None]:
    return lambda msg: chain.delivered(topic, tick_id, msg.offset() or 0)


@dataclass
class TickResult:
    published: list[TickPlan] = field(default_factory=list)
    skipped_recorded: int = 0
    degraded: dict[str, list[str]] = field(default_factory=dict)
    overrun: bool = False


class TickEmitter:
    """Owns the per-tick work; the scheduler only calls ``run_once``."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        engine: Engine,
        producer: EventProducer,
        *,
        source: CandleSource | None = None,
        deadline: timedelta = timedelta(seconds=30),
        catchup_hours: float = 24.0,
        prune: bool = True,
        clock: Callable[[], datetime] | None = None,
        exogenous: ExogenousFeed | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.engine = engine
        self.producer = producer
        self.source = source
        self.deadline = deadline
        self.catchup = timedelta(hours=catchup_hours)
        self.prune = prune
        self.clock = clock or (lambda: datetime.now(UTC))
        self.namespace = db_namespace(settings)
        self._lock = threading.Lock()
        #: Each bars topic's last message, so the next can continue it (ADR 0028). In memory only:
        #: a restarted emitter starts every topic with a keyframe.
        self.chain = BarChain(settings.bar_keyframe_hours)
        self._base_cache = BaseCandleCache(
            lambda start, end: store.load_arrays(
                self.engine, self.settings.symbol, self.settings.min_timeframe, start, end
            ),
            settings.min_timeframe_minutes,
        )
        #: Strategies that read exogenous series, and where their observations come from (Postgres,
        #: held in memory and refreshed in the background: see CachedDbFeed).
        self.exogenous_needs = exogenous_needs(registry)
        self.exogenous: ExogenousFeed | None = exogenous or (
            CachedDbFeed(engine, self.exogenous_needs) if self.exogenous_needs else None
        )
        for spec in registry.enabled:
            if spec.timeframe_minutes % settings.min_timeframe_minutes:
                raise ValueError(
                    f"{spec.name}: timeframe {spec.timeframe} is not a multiple of "
                    f"MIN_TIMEFRAME {settings.min_timeframe}"
                )

    def pending(self, now: datetime) -> list[DuePlan]:
        """Plans with something due, after the last recorded tick, up to ``now``, oldest first."""
        step = self.settings.global_tick_minutes
        end = tick_times(now - timedelta(minutes=step) + timedelta(milliseconds=1), now, step)[-1]
        last = last_recorded_tick(self.engine, self.namespace, self.settings.symbol)
        start = end if last is None else max(last + timedelta(minutes=step), end - self.catchup)
        if last is not None and last + timedelta(minutes=step) < end - self.catchup:
            log.warning(
                "catchup_truncated",
                last_tick=last.isoformat(),
                catchup_hours=self.catchup / timedelta(hours=1),
            )
        scan = candidate_step(self.registry, step)
        plans = (plan_tick(t, self.registry) for t in tick_times(start, end, scan))
        return [p for p in plans if p]

    @contextmanager
    def _cluster_lock(self) -> Iterator[bool]:
        """Postgres advisory lock: a second emitter (a mis-scaled deployment) skips, never doubles."""
        key = f"tick_emitter|{self.namespace}|{self.settings.symbol}"
        with self.engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": key}).scalar_one()
            try:
                yield bool(got)
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
                conn.commit()

    def run_once(self, now: datetime | None = None) -> TickResult:
        """One scheduler firing: sync, then publish every pending tick once. Never runs concurrently."""
        if not self._lock.acquire(blocking=False):
            TICK_OVERRUNS.inc()
            log.warning("tick_overrun", detail="previous tick still running; this firing is skipped")
            return TickResult(overrun=True)
        started = time.perf_counter()
        HEARTBEAT.labels("tick-emitter").set_to_current_time()
        try:
            with self._cluster_lock() as got:
                if not got:
                    TICK_OVERRUNS.inc()
                    log.warning("tick_locked", detail="another emitter holds the tick lock")
                    return TickResult(overrun=True)
                return self._run(now or self.clock())
        finally:
            self._lock.release()
            TICK_SECONDS.observe(time.perf_counter() - started)

    def _sync(self, now: datetime) -> None:
        if self.source is None:
            return
        try:
            sync_market_data(self.settings, self.engine, self.source, now=now, prune=self.prune)
        except Exception as exc:  # the exchange being down must not stop ticks on stored data
            log.error("sync_failed", error=f"{type(exc).__name__}: {exc}")

    def _run(self, now: datetime) -> TickResult:
        self._sync(now)
        result = TickResult()
        plans = self.pending(now)
        if not plans:
            return result
        done = recorded_tick_ids(self.engine, self.namespace, [self._tick_id(p) for p in plans])
        todo = [p for p in plans if self._tick_id(p) not in done]
        result.skipped_recorded = len(plans) - len(todo)
        if not todo:
            return result
        base = self.load_base(min(p.earliest_start for p in todo), todo[-1].tick_time)
        for plan in todo:
            windows = prepare_bars(base, plan.tick_time, plan)
            tick, bars, degraded = build_events(
                self.settings.symbol,
                plan,
                windows,
                published_at=self.clock(),
                deadline=self.deadline,
                namespace=self.settings.kafka.topic_prefix,
            )
            if degraded:
                result.degraded[tick.tick_id] = degraded
                for tf in degraded:
                    TICKS_DEGRADED.labels(tf).inc()
                log.warning(
                    "tick_degraded",
                    tick_id=tick.tick_id,
                    timeframes=degraded,
                    detail="closing bar incomplete (missing base candles); timeframe not published",
                )
            if not bars:
                log.warning("tick_not_published", tick_id=tick.tick_id, detail="no timeframe publishable")
                continue
            if self.exogenous is not None:
                bars = attach_exogenous(bars, plan, self.exogenous_needs, self.exogenous)
            try:
                publish_tick(self.producer, self.settings, tick, bars, chain=self.chain)
                self.producer.flush()
            except BaseException:
                self.chain.reset()  # something may be undelivered: the next messages are keyframes
                raise
            record_tick(self.engine, self.namespace, tick)
            TICKS_PUBLISHED.labels(self.namespace).inc()
            LAST_TICK.set(tick.tick_time.timestamp())
            result.published.append(tick)
            log.info(
                "tick_published",
                tick_id=tick.tick_id,
                timeframes=list(tick.due_timeframes),
                strategies=len(tick.due_strategies),
                lag_s=(now - tick.tick_time).total_seconds(),
            )
        return result

    def _tick_id(self, plan: DuePlan) -> str:
        return make_tick_id(self.settings.symbol, plan.tick_time)

    def load_base(self, start: datetime, end: datetime) -> BaseCandles:
        """All base candles the pending ticks need: cached, topped up with what is new since last tick."""
        return self._base_cache.get(start, end)


__all__ = ["TickEmitter", "TickResult", "db_namespace", "publish_tick", "record_tick"]
