"""The live emitter against real Kafka and Postgres: ticks, catch-up after an outage, exactly once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from common.dataset import BUNDLED_CSV
from common.db.session import make_engine
from common.events import BarClosed, TickPlan
from common.kafka.producer import EventProducer
from common.kafka.topics import TICKS, bars_topic
from common.registry import Registry, load_registry
from common.shutdown import GracefulShutdown
from common.timeframes import parse_timeframe
from config import Settings
from producers.sources import CsvSource
from tick_emitter.emitter import TickEmitter
from tick_emitter.readback import read_bar_messages, read_topic
from tick_emitter.service import run_forever

T0 = datetime(2021, 2, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    """Hourly base candles from the real dataset (MIN_TIMEFRAME=1h), a symbol of this test's own."""
    return settings.model_copy(update={"min_timeframe": "1h", "symbol": f"T{uuid.uuid4().hex[:6]}/USD:USD"})


@pytest.fixture
def registry(cfg: Settings) -> Registry:
    return load_registry(cfg.registry_path, max_lookback_hours=cfg.max_lookback_hours, import_classes=False)


@pytest.fixture
def csv_source() -> CsvSource:
    return CsvSource(BUNDLED_CSV)


@pytest.fixture
def emitter_factory(cfg: Settings, registry: Registry, csv_source: CsvSource) -> Iterator[object]:
    engine = make_engine(cfg.database_url.get_secret_value())
    producers: list[EventProducer] = []

    def make() -> TickEmitter:
        producer = EventProducer(cfg, "tick-emitter-test")
        producers.append(producer)
        return TickEmitter(cfg, registry, engine, producer, source=csv_source, prune=False)

    yield make
    for p in producers:
        p.close()
    engine.dispose()


def at(hours: float, seconds: int = 5) -> datetime:
    return T0 + timedelta(hours=hours, seconds=seconds)


def test_catch_up_after_outage_publishes_each_missed_tick_once_in_order(
    cfg: Settings, emitter_factory: object
) -> None:
    emitter = emitter_factory()  # type: ignore[operator]
    assert [t.tick_time for t in emitter.run_once(at(0)).published] == [T0]  # first start: current tick
    assert emitter.run_once(at(0, 40)).published == []  # same hour, nothing new
    assert [t.tick_time for t in emitter.run_once(at(1)).published] == [T0 + timedelta(hours=1)]
    # Down from 11:00:05 until 16:00:10: the restarted emitter catches up 12..16 in order.
    restarted = emitter_factory()  # type: ignore[operator]
    caught = restarted.run_once(at(6, 10)).published
    assert [t.tick_time for t in caught] == [T0 + timedelta(hours=h) for h in range(2, 7)]
    again = emitter_factory()  # type: ignore[operator]
    assert again.run_once(at(6, 30)).published == []  # a restart never republishes
    expected_ids = [f"{cfg.symbol}|{(T0 + timedelta(hours=h)).strftime('%Y-%m-%dT%H:%MZ')}" for h in range(7)]

    ticks = read_topic(cfg, cfg.topic(TICKS), expect=7, timeout=20)
    bars = read_topic(cfg, cfg.topic(bars_topic("1h")), expect=7, timeout=20)
    assert [k for k, _ in ticks] == expected_ids == [e.tick_id for _, e in ticks]
    assert [k for k, _ in bars] == expected_ids
    # The wire is a chain: each emitter process starts it with a keyframe (ticks 0 and 2 here),
    # then sends one-bar continuations; read_topic above returned the assembled whole windows.
    raw = read_bar_messages(cfg, cfg.topic(bars_topic("1h")), 7)
    assert [i for i, m in enumerate(raw) if m.is_keyframe] == [0, 2]
    assert all(
        len(m) == 1 and m.prev_tick_id == expected_ids[i - 1] for i, m in enumerate(raw) if i not in (0, 2)
    )
    assert len(read_topic(cfg, cfg.topic(TICKS), idle=1.0)) == 7  # nothing beyond the 7
    frame = CsvSource(BUNDLED_CSV)
    # The 1h window carries the longest lookback among the 1h strategies (the real registry's); a
    # tick that also closes a 4h/1d bar makes those strategies due too.
    reg = load_registry(cfg.registry_path, import_classes=False)
    longest = max(s.lookback_hours for s in reg.for_timeframe("1h"))
    closing_4h = 0
    for (_, plan), (_, bar) in zip(ticks, bars, strict=True):
        assert isinstance(plan, TickPlan) and isinstance(bar, BarClosed)
        minute = int(plan.tick_time.timestamp()) // 60
        closing = tuple(tf for tf in reg.timeframes if minute % parse_timeframe(tf) == 0)
        closing_4h += "4h" in closing
        assert plan.due_timeframes == closing
        due = {s.name for s in reg.enabled if s.timeframe in closing}
        assert {d.name for d in plan.due_strategies} == due
        assert plan.deadline == plan.tick_time + timedelta(seconds=30)
        assert plan.namespace == cfg.kafka.topic_prefix
        assert len(bar) == longest and bar.bar_open_time == plan.tick_time - timedelta(hours=1)
        last = frame.fetch("", "1h", bar.bar_open_time, plan.tick_time)[0]
        assert (bar.open[-1], bar.high[-1], bar.low[-1], bar.close[-1], bar.volume[-1]) == last.values()
    assert closing_4h >= 1, "the window should include a 4h close (the 4h bars are published too)"
    assert len(read_topic(cfg, cfg.topic(bars_topic("4h")), expect=closing_4h, timeout=20)) == closing_4h


def test_gap_in_closing_bar_degrades_tick_and_lock_prevents_overlap(
    cfg: Settings, emitter_factory: object
) -> None:
    emitter = emitter_factory()  # type: ignore[operator]
    emitter.run_once(at(0))
    # Without a sync the 10:00 candle (the closing bar of the 11:00 tick) is missing.
    no_sync = TickEmitter(cfg, emitter.registry, emitter.engine, emitter.producer, source=None)
    result = no_sync.run_once(at(1))
    assert result.published == [] and list(result.degraded.values()) == [["1h"]]

    emitter._lock.acquire()  # a tick still running in this process
    try:
        assert emitter.run_once(at(2)).overrun
    finally:
        emitter._lock.release()
    key = f"tick_emitter|{emitter.namespace}|{cfg.symbol}"
    with emitter.engine.connect() as other:  # another emitter process holds the cluster lock
        assert other.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": key}).scalar_one()
        assert emitter.run_once(at(2)).overrun
        other.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
    # The degraded 11:00 tick was not recorded; once the data arrived it is published, before 12:00.
    published = emitter.run_once(at(2)).published
    assert [t.tick_time for t in published] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]


def test_service_loop_starts_ticks_and_stops_on_shutdown(cfg: Settings, emitter_factory: object) -> None:
    emitter = emitter_factory()  # type: ignore[operator]
    fired = threading.Event()
    real_run = emitter.run_once

    def run_once(now: datetime | None = None) -> object:
        fired.set()
        return real_run(at(0))

    emitter.run_once = run_once  # type: ignore[method-assign]
    shutdown = GracefulShutdown()
    thread = threading.Thread(target=run_forever, args=(emitter,), kwargs={"shutdown": shutdown})
    thread.start()
    assert fired.wait(30)
    shutdown.request()
    thread.join(60)
    assert not thread.is_alive()
