"""Exogenous inputs end to end on the real broker and database: Postgres -> tick emitter -> bars
topics -> strategy runners -> Recommendations equal to the offline full-history result.

The shared exogenous files are imported into a database of this test's own; the emitter replays
a few days of December 2021 (1h, 4h and 1d bars) into a topic namespace of its own, from a
registry written for the test (the repository's registry is the lead's to change), and each
strategy's runner answers from the bars topic. What must hold:

* every Recommendation equals the strategy's full-history evaluation (whole candle history,
  files loaded by ``common.exogenous.files.load_dir``), bar for bar, reason and attention too;
* no bar message ever carries an observation published after its tick, and each carries at
  least what the strategies' reach needs;
* the 4h and 1d windows are the emitter's epoch-aligned resampling of the hourly candles.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from common import serde
from common.bar_stream import WindowAssembler
from common.dataset import load_bundled_candles
from common.db import migrate
from common.db.session import make_engine
from common.events import Recommendation
from common.exogenous.files import load_dir
from common.kafka.configuration import admin_config, consumer_config
from common.kafka.topics import RECOMMENDATIONS, bars_topic, delete_topics_with_prefix
from common.registry import load_registry
from common.serde_bars import BarWindow, decode_bar_window
from config import Settings, load_settings
from producers.exogenous import import_dir
from strategy_consumers.runner import TARGETS, build_strategy, make_loop
from tick_emitter.core import BaseCandles
from tick_emitter.exogenous import exogenous_needs
from tick_emitter.replay import replay
from training.signals import resample_candles

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "exogenous"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
START = datetime(2021, 12, 10, tzinfo=UTC)
END = datetime(2021, 12, 13, 23, tzinfo=UTC)
STRATEGIES = {  # name -> (class path, timeframe); lookbacks are the classes' defaults
    "funding_extremes": ("strategy_consumers.strategies.funding_extremes:FundingExtremes", "4h"),
    "exchange_reserves": ("strategy_consumers.strategies.exchange_reserves:ExchangeReserves", "1d"),
    "news_attention": ("strategy_consumers.strategies.news_attention:NewsAttention", "1h"),
    "bband_rsi": ("strategy_consumers.strategies.bband_rsi:BbandRsi", "1h"),
}
TICKS = {"1h": 96, "4h": 24, "1d": 4}  # bars closing in [START, END]: 4 days


def _registry_doc() -> dict[str, Any]:
    entries = []
    for name, (class_path, timeframe) in STRATEGIES.items():
        from common.registry import import_class

        cls = import_class(class_path)
        entries.append(
            {
                "name": name,
                "class_path": class_path,
                "timeframe": timeframe,
                "lookback_hours": int(cls.default_lookback_hours),
                "enabled": True,
                "version": "1.0.0",
                "params": {},
                "exogenous_inputs": sorted(getattr(cls, "exogenous_inputs", {})),
            }
        )
    return {"strategies": entries}


@pytest.fixture
def env(empty_database_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Settings, Any]]:
    """A migrated database of its own with the series the strategies read, a registry file of
    the test's own, and a topic prefix of its own."""
    migrate.upgrade(empty_database_url)
    registry_path = tmp_path / "registry.json"
    registry_path.write_text(json.dumps(_registry_doc()), encoding="utf-8")
    prefix = f"test.{uuid.uuid4().hex[:8]}."
    settings = load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix},
        database_url=empty_database_url,
        registry_path=str(registry_path),
    )
    engine = make_engine(empty_database_url)
    registry = load_registry(registry_path, max_lookback_hours=settings.max_lookback_hours)
    series = sorted({s for need in exogenous_needs(registry) for s in need.series})
    reports = import_dir(engine, DATA, series, now=NOW)
    assert all(r.error is None and r.inserted > 0 for r in reports), [r.line() for r in reports]
    yield settings, registry
    engine.dispose()
    delete_topics_with_prefix(AdminClient(admin_config(settings)), prefix)


def _read(settings: Settings, topic: str, n: int, decode: Any, timeout: float = 60.0) -> list[Any]:
    consumer = Consumer(consumer_config(settings, f"read-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=0.2):
            if msg.error() is None:
                out.append(decode(msg.value()))
    consumer.close()
    return out


def _base(history: pd.DataFrame, end: datetime) -> BaseCandles:
    frame = history[history.index < end]
    return BaseCandles(frame.index.as_unit("ms").asi8.astype(np.int64), frame.to_numpy(np.float64), 60)


def test_live_recommendations_equal_full_history_with_exogenous_inputs(env: tuple[Settings, Any]) -> None:
    settings, registry = env
    history = load_bundled_candles()
    stats = replay(settings, registry, _base(history, END + timedelta(hours=1)), START, END)
    assert stats.ticks == TICKS["1h"] and stats.degraded == 0

    # ---- the bar messages: aligned, resampled, cut at the tick
    needs = {n.strategy: n for n in exogenous_needs(registry)}
    bars: dict[str, list[BarWindow]] = {}
    for tf, count in TICKS.items():
        # Every message as its whole window (a continuation assembled onto its chain, read in order).
        assembler = WindowAssembler(None)
        bars[tf] = _read(
            settings,
            settings.topic(bars_topic(tf)),
            count,
            lambda b, a=assembler, tf=tf: a.window(decode_bar_window(b), bars_topic(tf)),
        )
        assert len(bars[tf]) == count, tf
        assert all(bar.is_keyframe for bar in bars[tf]) and assembler.read_backs == 0
    resampled = {tf: resample_candles(history, tf) for tf in TICKS}
    delivered = 0
    for tf, messages in bars.items():
        tf_ms = {"1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}[tf]
        for bar in messages:
            tick_ms = int(bar.times[-1]) + tf_ms
            assert tick_ms % tf_ms == 0, f"{tf} bar not epoch-aligned: {bar.bar_open_time}"
            assert np.all(np.diff(bar.times) == tf_ms)  # complete, gap-free bins in this range
            want = resampled[tf].loc[pd.to_datetime(bar.times, unit="ms", utc=True)]
            assert np.array_equal(bar.close, want["close"].to_numpy())
            assert np.array_equal(bar.columns["volume"], want["volume"].to_numpy())
            readers = [n for n in needs.values() if n.timeframe == tf]
            assert set(bar.exogenous) == {s for n in readers for s in n.series}, tf
            first_close = int(bar.times[0]) + tf_ms
            for name, arrays in bar.exogenous.items():
                # never anything published after the tick; never less than the reach needs
                assert len(arrays) == 0 or int(arrays.published_ms.max()) <= tick_ms, (name, bar.tick_id)
                reach = max(n.reach_ms for n in readers if name in n.series)
                assert len(arrays) == 0 or int(arrays.published_ms.min()) >= first_close - reach
                delivered += len(arrays)
    assert delivered > 0

    # ---- the runners answer; their answers equal the full history
    frames = load_dir(DATA, sorted({s for n in needs.values() for s in n.series}), now=NOW)
    for name, (_, tf) in STRATEGIES.items():
        loop, _runner = make_loop(settings, name)
        loop.run(max_messages=TICKS[tf], idle_timeout=30)
    recs: list[Recommendation] = _read(
        settings,
        settings.topic(RECOMMENDATIONS),
        sum(TICKS[tf] for _, tf in STRATEGIES.values()),
        lambda b: serde.decode(b, Recommendation),
    )
    by_strategy: dict[str, list[Recommendation]] = {}
    for rec in recs:
        by_strategy.setdefault(rec.strategy, []).append(rec)
    opinions = 0
    for name, (_, tf) in STRATEGIES.items():
        got = by_strategy.get(name, [])
        assert len(got) == TICKS[tf], name
        spec = registry.get(name)
        strategy = build_strategy(spec)
        candles = resampled[tf]
        expected = strategy.evaluate(
            candles[candles.index < END + timedelta(hours=1)],
            exogenous=frames if strategy.exogenous_inputs else None,
        )
        for rec in got:
            row = expected.loc[rec.bar_close_time - timedelta(minutes=spec.timeframe_minutes)]
            where = f"{name} {rec.tick_id}"
            assert rec.target is TARGETS[int(row["target"])], where
            assert rec.event.value == row["event"], where
            assert rec.confidence == pytest.approx(float(row["confidence"]), abs=1e-9), where
            assert rec.reason == (str(row["reason"]) if "reason" in row.index else ""), where
            if "high_attention" in row.index:
                assert rec.attention is bool(row["high_attention"]), where
            else:
                assert rec.attention is None, where
            for key, value in rec.indicators.items():
                assert value == pytest.approx(float(row[key]), rel=1e-9, abs=1e-12), (where, key)
            opinions += int(bool(strategy.exogenous_inputs) and rec.reason == "")
    assert opinions > 0, "some exogenous strategy should have an opinion in this range"
    news = by_strategy["news_attention"]  # the range has bursts, quiet hours and feed gaps
    assert {"", "stale:news_headlines"} <= {r.reason for r in news}
    assert any(r.attention for r in news) and any(r.attention is False for r in news)
    assert any(r.target is not TARGETS[0] for r in news)
