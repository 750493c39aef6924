"""Replay publishes exactly what the live path published, into its own namespace, with flow control."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from common.dataset import BUNDLED_CSV
from common.db.session import make_engine
from common.kafka.configuration import admin_config, consumer_config
from common.kafka.producer import EventProducer
from common.kafka.topics import TICKS, bars_topic, delete_topics_with_prefix, ensure_topics, topic_specs
from common.registry import load_registry
from common.serde_bars import BarWindow
from config import KafkaSettings, Settings
from producers import store
from producers.sources import CsvSource
from producers.sync import import_csv
from tick_emitter.core import BaseCandles
from tick_emitter.emitter import TickEmitter
from tick_emitter.readback import read_bar_messages, read_topic
from tick_emitter.replay import ReplayRefused, _retry, base_from_csv, check_namespace, replay
from tick_emitter.synthetic import registry_of

A = datetime(2021, 2, 1, 0, 0, tzinfo=UTC)
B = datetime(2021, 2, 2, 0, 0, tzinfo=UTC)
TFS = ["1h", "4h", "1d"]
REGISTRY = registry_of([("h1", "1h", 720), ("h4", "4h", 720), ("d1", "1d", 720), ("h1b", "1h", 48)])


def with_prefix(settings: Settings, prefix: str) -> Settings:
    kafka = KafkaSettings.model_validate({**settings.kafka.model_dump(), "topic_prefix": prefix})
    return settings.model_copy(update={"kafka": kafka})


@pytest.fixture
def cfg(settings: Settings) -> Iterator[Settings]:
    """Live-side settings (the test's own prefix) with real hourly candles imported for the range."""
    s = settings.model_copy(update={"min_timeframe": "1h", "symbol": f"R{uuid.uuid4().hex[:6]}/USD:USD"})
    ensure_topics(AdminClient(admin_config(s)), topic_specs(s, TFS))
    engine = make_engine(s.database_url.get_secret_value())
    import_csv(s, engine, CsvSource(BUNDLED_CSV), start=A - timedelta(hours=800), end=B + timedelta(hours=2))
    engine.dispose()
    yield s


@pytest.fixture
def replay_cfg(cfg: Settings) -> Iterator[Settings]:
    s = with_prefix(cfg, f"replay.{uuid.uuid4().hex[:8]}.")
    yield s
    delete_topics_with_prefix(AdminClient(admin_config(s)), s.kafka.topic_prefix)


def comparable(event: object) -> object:
    """Fields that differ by design: published_at (wall clock live, tick time in replay), namespace."""
    if hasattr(event, "published_at"):
        return dataclasses.replace(event, published_at=B, namespace="")  # type: ignore[type-var]
    return event


def read_all(s: Settings, n_ticks: int, n_bars: dict[str, int]) -> tuple[list, dict[str, list]]:
    ticks = read_topic(s, s.topic(TICKS), expect=n_ticks)
    bars = {tf: read_topic(s, s.topic(bars_topic(tf)), expect=n) for tf, n in n_bars.items()}
    return ticks, bars


def raw_windows(s: Settings, tf: str, n: int) -> list[BarWindow]:
    """The bar messages of ``tf`` as sent (a continuation is only its tail), in offset order."""
    return read_bar_messages(s, s.topic(bars_topic(tf)), n)


def assert_chained(s: Settings, n: int) -> None:
    """25 hourly ticks: a keyframe every 24 h of tick time, one-bar continuations in between."""
    raw = raw_windows(s, "1h", n)
    assert len(raw) == n
    assert [i for i, m in enumerate(raw) if m.is_keyframe] == [0, 24]
    continuations = [m for m in raw if not m.is_keyframe]
    assert len(continuations) == n - 2 and all(len(m) == 1 for m in continuations)
    assert all(m.keyframe_offset in (0, 24) and m.window_bars == 720 for m in continuations)


def test_replay_equals_live_from_db_and_csv(cfg: Settings, replay_cfg: Settings) -> None:
    engine = make_engine(cfg.database_url.get_secret_value())
    producer = EventProducer(cfg, "tick-emitter-test")
    live = TickEmitter(cfg, REGISTRY, engine, producer, source=None, catchup_hours=48)
    live.run_once(A + timedelta(seconds=5))
    assert len(live.run_once(B + timedelta(seconds=7)).published) == 24
    producer.close()
    counts = {"1h": 25, "4h": 7, "1d": 2}
    live_ticks, live_bars = read_all(cfg, 25, counts)

    arrays = store.load_arrays(engine, cfg.symbol, "1h", A - timedelta(hours=720), B)
    stats = replay(replay_cfg, REGISTRY, BaseCandles(*arrays, 60), A, B)
    assert (stats.ticks, stats.bars, stats.degraded) == (25, 34, 0)
    r_ticks, r_bars = read_all(replay_cfg, 25, counts)
    assert [comparable(e) for _, e in r_ticks] == [comparable(e) for _, e in live_ticks]
    assert [(k, e) for k, e in live_ticks] != [] and all(e.published_at == e.tick_time for _, e in r_ticks)
    assert all(e.namespace == replay_cfg.kafka.topic_prefix for _, e in r_ticks)
    for tf in TFS:
        assert r_bars[tf] == live_bars[tf]  # keys and every BarClosed field identical
    assert [len(e) for _, e in r_bars["1d"]] == [30, 30] and len(r_bars["1h"][0][1]) == 720
    assert all(len(e) == 720 for _, e in r_bars["1h"])  # whole windows, assembled by read_topic
    assert_chained(cfg, 25)  # the live emitter and the replay both send the chain
    assert_chained(replay_cfg, 25)

    # Keyframes only (BTCMETA_BAR_KEYFRAME_HOURS=0): every message whole, the same windows bit for bit.
    kf_cfg = with_prefix(cfg, f"replay.{uuid.uuid4().hex[:8]}.").model_copy(update={"bar_keyframe_hours": 0})
    try:
        replay(kf_cfg, REGISTRY, BaseCandles(*arrays, 60), A, B)
        raw = raw_windows(kf_cfg, "1h", 25)
        assert len(raw) == 25 and all(m.is_keyframe and len(m) == 720 for m in raw)
        assert read_all(kf_cfg, 25, counts)[1] == r_bars
    finally:
        delete_topics_with_prefix(AdminClient(admin_config(kf_cfg)), kf_cfg.kafka.topic_prefix)

    csv_cfg = with_prefix(cfg, f"replay.{uuid.uuid4().hex[:8]}.")
    try:
        replay(csv_cfg, REGISTRY, base_from_csv(str(BUNDLED_CSV), 60, datetime.now(UTC)), A, B)
        c_ticks, c_bars = read_all(csv_cfg, 25, counts)
        assert [comparable(e) for _, e in c_ticks] == [comparable(e) for _, e in r_ticks]
        assert c_bars == r_bars
    finally:
        delete_topics_with_prefix(AdminClient(admin_config(csv_cfg)), csv_cfg.kafka.topic_prefix)
    engine.dispose()


def test_replay_refuses_live_namespace(cfg: Settings) -> None:
    live = with_prefix(cfg, "")
    with pytest.raises(ReplayRefused):
        check_namespace(live)
    with pytest.raises(ReplayRefused):
        replay(live, REGISTRY, BaseCandles.empty(60), A, B)


def test_flow_control_and_speed(cfg: Settings, replay_cfg: Settings) -> None:
    engine = make_engine(cfg.database_url.get_secret_value())
    base = BaseCandles(*store.load_arrays(engine, cfg.symbol, "1h", A - timedelta(hours=720), B), 60)
    engine.dispose()
    reg = registry_of([("h1", "1h", 72)])
    end = A + timedelta(hours=11)  # 12 ticks
    topic = replay_cfg.topic(bars_topic("1h"))
    done: list[object] = []
    # Created here, not only inside replay(): the probe below must find the topic however slowly
    # the worker thread gets going on a loaded machine.
    ensure_topics(AdminClient(admin_config(replay_cfg)), topic_specs(replay_cfg, reg.timeframes))
    worker = threading.Thread(
        target=lambda: done.append(
            replay(replay_cfg, reg, base, A, end, max_ahead=3, groups=["slow-strategy"])
        )
    )
    worker.start()
    probe = Consumer(consumer_config(replay_cfg, "probe"))
    # No commit from the group yet (floor 0): ticks 1..4 go out (0..3 sent <= max_ahead before
    # each), the fifth waits. Wait until the replay has really reached that point (a bare upper
    # bound would also hold for a replay that published nothing), then check it stays there.
    # (A freshly created topic may answer "not leader" for a moment: _retry waits that out.)
    watermark = partial(probe.get_watermark_offsets, TopicPartition(topic, 0), timeout=10)
    deadline = time.monotonic() + 60
    high = 0
    while high < 4 and time.monotonic() < deadline and worker.is_alive():
        _, high = _retry(watermark)
        time.sleep(0.1)
    time.sleep(1.5)
    _, high = _retry(watermark)
    assert high == 4 and worker.is_alive()  # held back: exactly max_ahead + the one in flight
    slow = Consumer(consumer_config(replay_cfg, "slow-strategy"))
    slow.assign([TopicPartition(topic, 0, 0)])
    consumed = 0
    deadline = time.monotonic() + 30
    while consumed < 12 and time.monotonic() < deadline:
        for msg in slow.consume(num_messages=1, timeout=0.2):
            if not msg.error():
                consumed += 1
                slow.commit(message=msg, asynchronous=False)
    worker.join(30)
    slow.close()
    probe.close()
    assert consumed == 12 and done and done[0].ticks == 12  # type: ignore[attr-defined]

    paced = with_prefix(cfg, f"replay.{uuid.uuid4().hex[:8]}.")
    try:
        stats = replay(paced, reg, base, A, A + timedelta(hours=9), speed=20.0)
        assert stats.ticks == 10 and stats.seconds >= 0.45
    finally:
        delete_topics_with_prefix(AdminClient(admin_config(paced)), paced.kafka.topic_prefix)


def test_cli_replay_from_csv_and_bad_arguments(cfg: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from config import get_settings
    from producers.cli import app as producers_app
    from tick_emitter.cli import app as emitter_app

    runner = CliRunner()
    assert runner.invoke(emitter_app, ["--help"]).exit_code == 0
    assert runner.invoke(producers_app, ["--help"]).exit_code == 0
    assert runner.invoke(producers_app, ["gaps"]).exit_code == 2  # missing --start/--end: usage
    assert runner.invoke(emitter_app, ["bogus"]).exit_code == 2
    span = ["--start", "2021-02-01T00:00", "--end", "2021-02-02T00:00"]
    bad = runner.invoke(emitter_app, ["replay", *span, "--prefix", ""])
    assert bad.exit_code == 2 and "live namespace" in bad.output
    bad_when = runner.invoke(emitter_app, ["replay", "--start", "yesterday", "--end", "x", "--prefix", "r."])
    assert bad_when.exit_code != 0

    prefix = f"replay.{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("BTCMETA_MIN_TIMEFRAME", "1h")
    monkeypatch.setenv("BTCMETA_KAFKA__BOOTSTRAP_SERVERS", cfg.kafka.bootstrap_servers)
    monkeypatch.setenv("BTCMETA_REGISTRY_PATH", cfg.registry_path)
    monkeypatch.setenv("BTCMETA_LOG_JSON", "false")
    get_settings.cache_clear()
    try:
        done = runner.invoke(emitter_app, ["replay", *span, "--prefix", prefix, "--csv", str(BUNDLED_CSV)])
        assert done.exit_code == 0, done.output
        # 25 hourly ticks; the registry's timeframes close 25 (1h) + 7 (4h) + 2 (1d) bars in that span
        closes = {"1h": 25, "4h": 7, "1d": 2}
        bars = sum(closes[tf] for tf in load_registry(cfg.registry_path).timeframes)
        assert f"25 ticks, {bars} bars" in done.output
    finally:
        get_settings.cache_clear()
        delete_topics_with_prefix(AdminClient(admin_config(cfg)), prefix)
