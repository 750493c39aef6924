"""The strategy runner on the real broker: replayed real bars in, Recommendations equal to history out."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer

from common import serde
from common.dataset import load_bundled_candles
from common.events import DeadLetter, Recommendation
from common.ids import make_tick_id
from common.kafka.configuration import consumer_config
from common.kafka.producer import EventProducer
from common.kafka.topics import DEAD_LETTERS, RECOMMENDATIONS, bars_topic
from common.registry import load_registry
from common.testkit import sample_bar_closed
from config import Settings
from strategy_consumers.runner import TARGETS, RunnerError, build_strategy, make_loop
from tick_emitter.core import BaseCandles
from tick_emitter.replay import replay

pytestmark = pytest.mark.integration

START = datetime(2020, 3, 1, tzinfo=UTC)  # includes the March 2020 crash: many signals
END = datetime(2020, 3, 8, 23, tzinfo=UTC)


def read_all(settings: Settings, topic: str, expected_type: type, n: int, timeout: float = 60.0) -> list[Any]:
    """Every message of a (multi-partition) topic, decoded; waits until ``n`` arrived."""
    consumer = Consumer(consumer_config(settings, f"read-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=0.2):
            if msg.error() is None:
                out.append(serde.decode(msg.value(), expected_type))
    consumer.close()
    return out


@pytest.fixture(scope="module")
def history():
    return load_bundled_candles()


def _base(history, end: datetime) -> BaseCandles:
    frame = history[history.index < end]
    return BaseCandles(frame.index.as_unit("ms").asi8.astype(np.int64), frame.to_numpy(np.float64), 60)


@pytest.mark.parametrize("name", ["bband_rsi", "fsupertrend"])
def test_recommendations_equal_full_history(settings: Settings, history, name: str) -> None:
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    stats = replay(settings, registry, _base(history, END), START, END)
    n_ticks = stats.ticks
    assert n_ticks == 8 * 24  # hourly ticks in [START, END], both ends included

    # Stop the runner half-way once to prove a restart (cold start) gives the same answers.
    for chunk in (n_ticks // 2, n_ticks - n_ticks // 2):
        loop, _runner = make_loop(settings, name)
        loop.run(max_messages=chunk, idle_timeout=30)

    recs = read_all(settings, settings.topic(RECOMMENDATIONS), Recommendation, n_ticks)
    assert len(recs) == n_ticks
    spec = registry.get(name)
    expected = build_strategy(spec).evaluate(history[history.index < END])
    for rec in recs:
        bar_open = rec.bar_close_time - timedelta(minutes=spec.timeframe_minutes)
        row = expected.loc[bar_open]
        assert rec.target is TARGETS[int(row["target"])], rec.tick_id
        assert rec.event.value == row["event"], rec.tick_id
        assert rec.confidence == pytest.approx(float(row["confidence"]), abs=1e-9)
    assert any(r.event.value != "NONE" for r in recs), "the window should contain at least one signal"


def test_poison_bars_go_to_dead_letters_and_the_runner_keeps_going(settings: Settings) -> None:
    producer = EventProducer(settings, "test")
    topic = settings.topic(bars_topic("1h"))
    wrong_tf = sample_bar_closed(bars=10, timeframe="4h")
    producer.send(topic, wrong_tf, key=wrong_tf.tick_id)
    producer.send_raw(topic, b"\xc3\x01garbage", key=b"x")
    good = sample_bar_closed(bars=10)
    producer.send(topic, good, key=good.tick_id)
    producer.flush()
    loop, _ = make_loop(settings, "bband_rsi")
    stats = loop.run(max_messages=3, idle_timeout=30)
    assert (stats.handled, stats.dead_lettered) == (1, 2)
    letters = read_all(settings, settings.topic(DEAD_LETTERS), DeadLetter, 2)
    assert "timeframe 4h" in letters[0].reason
    [rec] = read_all(settings, settings.topic(RECOMMENDATIONS), Recommendation, 1)
    assert rec.tick_id == good.tick_id and rec.strategy == "bband_rsi"


def test_unknown_or_disabled_strategy_refuses_to_start(settings: Settings, tmp_path) -> None:
    with pytest.raises(RunnerError, match="not in"):
        make_loop(settings, "no_such_strategy")
    with open(settings.registry_path) as fh:
        doc = json.load(fh)
    doc["strategies"][0]["enabled"] = False
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(doc))
    disabled = settings.model_copy(update={"registry_path": str(path)})
    with pytest.raises(RunnerError, match="disabled"):
        make_loop(disabled, doc["strategies"][0]["name"])


def test_a_bar_the_strategy_fails_on_is_dead_lettered_alone(settings: Settings, monkeypatch) -> None:
    """Bars are answered per consume batch; when that fails, bar by bar, so only the bar the
    strategy cannot compute goes to the dead letters and its neighbours are answered."""
    producer = EventProducer(settings, "test")
    topic = settings.topic(bars_topic("1h"))
    bars = [
        sample_bar_closed(bars=40, tick_id=make_tick_id("BTC/USD:USD", datetime(2024, 1, k, tzinfo=UTC)))
        for k in (1, 2, 3)
    ]
    for bar in bars:
        producer.send(topic, bar, key=bar.tick_id)
    producer.flush()
    loop, runner = make_loop(settings, "bband_rsi")
    real = runner.recommendation_for

    def failing(bar):  # a strategy bug that only this bar's data triggers
        if bar.tick_id == bars[1].tick_id:
            raise FloatingPointError("indicator blew up")
        return real(bar)

    def batch_fails(bars_):
        raise FloatingPointError("indicator blew up")

    monkeypatch.setattr(runner, "recommendation_for", failing)
    monkeypatch.setattr(runner, "recommendations_for", batch_fails)
    stats = loop.run(max_messages=3, idle_timeout=30)
    assert (stats.handled, stats.dead_lettered) == (2, 1)
    [letter] = read_all(settings, settings.topic(DEAD_LETTERS), DeadLetter, 1)
    assert "FloatingPointError: indicator blew up" in letter.reason
    recs = read_all(settings, settings.topic(RECOMMENDATIONS), Recommendation, 2)
    assert sorted(r.tick_id for r in recs) == sorted([bars[0].tick_id, bars[2].tick_id])
