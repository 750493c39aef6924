"""BarClosed v3 chains on the real broker: read-back, mid-chain restarts, broken chains.

A replay over a few days of the bundled candles publishes the 1h bars topic as a chain (a keyframe
every ``bar_keyframe_hours`` of tick time, continuations in between). What is proven here, with
nothing mocked:

* ``PartitionReadBack`` reads exactly the offsets and bytes a plain consumer reads, for any range;
  an empty range yields nothing and a range past the end stops at the partition's end;
* a strategy runner restarted with its group's offset on a continuation rebuilds the window by
  reading back and answers every bar bit for bit as a runner of an all-keyframe topic;
* the meta consumer's ``BarReader`` resumed at a continuation gives the same marks as one that
  read the topic from its start;
* a continuation whose keyframe cannot be read is dead-lettered and later keyframes are answered.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from common.bar_stream import BarChain
from common.dataset import load_bundled_candles
from common.events import BarClosed, DeadLetter, Recommendation
from common.ids import make_tick_id
from common.kafka.configuration import admin_config, consumer_config
from common.kafka.producer import EventProducer
from common.kafka.readback import PartitionReadBack
from common.kafka.topics import (
    DEAD_LETTERS,
    RECOMMENDATIONS,
    bars_topic,
    delete_topics_with_prefix,
    ensure_topics,
    topic_specs,
)
from common.registry import load_registry
from common.serde_bars import decode_bar_window, encode_bar
from config import Settings
from meta_consumer.bars import BarReader
from strategy_consumers.runner import make_loop
from tests.integration.test_strategy_runner import read_all
from tick_emitter.core import BarPayload, BaseCandles
from tick_emitter.replay import replay

pytestmark = pytest.mark.integration

START = datetime(2020, 3, 1, tzinfo=UTC)
END = datetime(2020, 3, 3, 23, tzinfo=UTC)
TICKS = 3 * 24  # hourly ticks in [START, END], both ends included: one 1h bar each
STRATEGY = "supertrend"


@pytest.fixture(scope="module")
def history():
    return load_bundled_candles()


def _base(history) -> BaseCandles:
    frame = history[history.index <= END]
    return BaseCandles(frame.index.as_unit("ms").asi8.astype(np.int64), frame.to_numpy(np.float64), 60)


def _replay(settings: Settings, history) -> str:
    """Replay [START, END] into the settings' namespace; the 1h bars topic's name."""
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    stats = replay(settings, registry, _base(history), START, END)
    assert stats.ticks == TICKS
    return settings.topic(bars_topic("1h"))


@contextmanager
def _namespace(settings: Settings, **update: Any) -> Iterator[Settings]:
    """A second topic prefix next to the fixture's, topics created, deleted afterwards."""
    prefix = f"test.{uuid.uuid4().hex[:8]}."
    kafka = settings.kafka.model_copy(update={"topic_prefix": prefix})
    s = settings.model_copy(update={"kafka": kafka, **update})
    admin = AdminClient(admin_config(s))
    registry = load_registry(s.registry_path, import_classes=False)
    ensure_topics(admin, topic_specs(s, registry.timeframes))
    try:
        yield s
    finally:
        delete_topics_with_prefix(admin, prefix)


def _read_partition(settings: Settings, topic: str, timeout: float = 30.0) -> list[tuple[int, bytes]]:
    """Every message of ``topic[0]`` as (offset, value), read by a plain consumer to the end."""
    conf = consumer_config(settings, f"plain-{uuid.uuid4().hex[:8]}") | {"enable.partition.eof": True}
    consumer = Consumer(conf)
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(str(err))
            out.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    raise AssertionError(f"{topic}: no partition end within {timeout}s")


def _first_continuation_after(messages: list[tuple[int, bytes]], at: int) -> int:
    """Offset of a continuation at or after index ``at`` whose keyframe lies a few links back."""
    for offset, value in messages[at:]:
        part = decode_bar_window(value)
        if not part.is_keyframe and offset - part.keyframe_offset >= 3:
            return offset
    raise AssertionError("the replayed topic has no continuation: was it published as a chain?")


# ------------------------------------------------------------------------------- read-back


def test_partition_read_back_reads_what_a_plain_consumer_reads(settings: Settings, history) -> None:
    topic = _replay(settings, history)
    plain = _read_partition(settings, topic)
    assert len(plain) == TICKS
    parts = [decode_bar_window(v) for _, v in plain]
    assert parts[0].is_keyframe and sum(p.is_keyframe for p in parts) < len(parts) // 4, "not a chain"

    read_back = PartitionReadBack(settings, "test-chain", timeout_s=15)
    by_offset = dict(plain)
    offsets = [o for o, _ in plain]
    for a, b in [(0, 1), (0, 10), (17, 42), (offsets[-1], offsets[-1] + 1), (0, offsets[-1] + 1)]:
        got = list(read_back(topic, 0, a, b))
        assert [o for o, _ in got] == [o for o in offsets if a <= o < b], (a, b)
        assert all(v == by_offset[o] for o, v in got), (a, b)

    # Empty and reversed ranges: nothing, at once.
    assert list(read_back(topic, 0, 5, 5)) == []
    assert list(read_back(topic, 0, 9, 3)) == []

    # Past the end: what is there, then the partition's end (no wait for the timeout).
    end = offsets[-1] + 1
    for a, b in [(end - 3, end + 50), (end, end + 5)]:
        started = time.monotonic()
        got = list(read_back(topic, 0, a, b))
        assert [o for o, _ in got] == [o for o in offsets if a <= o], (a, b)
        assert all(v == by_offset[o] for o, v in got)
        assert time.monotonic() - started < 10, f"range {a}..{b} past the end waited for the timeout"


# ------------------------------------------------------------------------- strategy runner


def _answer(rec: Recommendation) -> tuple[Any, ...]:
    """Everything a Recommendation says about its bar (not when it was produced)."""
    return (
        rec.tick_id,
        rec.strategy,
        rec.bar_close_time,
        rec.target,
        rec.event,
        rec.confidence,
        rec.horizon_bars,
        dict(rec.indicators),
        rec.reason,
        rec.attention,
    )


def test_runner_restarted_mid_chain_answers_as_on_keyframes(settings: Settings, history) -> None:
    topic = _replay(settings, history)
    messages = _read_partition(settings, topic)
    cut = _first_continuation_after(messages, TICKS // 3)

    # First run: up to (not including) the continuation at ``cut``; the group commits there.
    loop, first = make_loop(settings, STRATEGY)
    stats = loop.run(max_messages=cut, idle_timeout=30)
    assert (stats.handled, stats.dead_lettered) == (cut, 0)
    assert first.assembler.read_backs == 0  # from the first keyframe on: every link from memory
    # A fresh runner, as a new process: no held windows, resumes at the group's continuation.
    loop, restarted = make_loop(settings, STRATEGY)
    stats = loop.run(max_messages=TICKS - cut, idle_timeout=30)
    assert (stats.handled, stats.dead_lettered) == (TICKS - cut, 0)
    assert restarted.assembler.read_backs >= 1, "the restarted runner never read its chain back"
    chained = read_all(settings, settings.topic(RECOMMENDATIONS), Recommendation, TICKS)

    with _namespace(settings, bar_keyframe_hours=0) as keyframes:
        kf_topic = _replay(keyframes, history)
        assert all(decode_bar_window(v).is_keyframe for _, v in _read_partition(keyframes, kf_topic))
        loop, whole = make_loop(keyframes, STRATEGY)
        stats = loop.run(max_messages=TICKS, idle_timeout=30)
        assert (stats.handled, stats.dead_lettered) == (TICKS, 0)
        assert whole.assembler.read_backs == 0
        reference = read_all(keyframes, keyframes.topic(RECOMMENDATIONS), Recommendation, TICKS)

    assert len(chained) == len(reference) == TICKS
    got = {r.tick_id: _answer(r) for r in chained}
    want = {r.tick_id: _answer(r) for r in reference}
    assert len(got) == TICKS
    for tick_id, answer in want.items():
        assert got[tick_id] == answer, tick_id


# --------------------------------------------------------------------------- meta BarReader


def _marks(reader: BarReader, n: int, timeout: float = 30.0) -> list[Any]:
    marks: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(marks) < n and time.monotonic() < deadline:
        marks.extend(reader.poll())
        time.sleep(0.01)
    return marks


def test_bar_reader_resumed_at_a_continuation_marks_as_from_the_start(settings: Settings, history) -> None:
    topic = _replay(settings, history)
    messages = _read_partition(settings, topic)
    cut = _first_continuation_after(messages, TICKS // 2)

    reader = BarReader(settings, "1h", f"meta-{uuid.uuid4().hex[:6]}", None)
    try:
        full = _marks(reader, TICKS)
    finally:
        reader.close()
    assert len(full) == TICKS and [m.offset for m in full] == [o for o, _ in messages]

    resumed_reader = BarReader(settings, "1h", f"meta-{uuid.uuid4().hex[:6]}", cut)
    try:
        resumed = _marks(resumed_reader, TICKS - cut)
        assert resumed_reader._assembler.read_backs >= 1
    finally:
        resumed_reader.close()
    assert resumed == full[cut:]
    # The marks are the real closes: the last bar's close window ends at the bundled candle's close.
    last_open = datetime.fromtimestamp(decode_bar_window(messages[-1][1]).times[-1] / 1000, tz=UTC)
    assert full[-1].closes[-1] == float(history.loc[last_open, "close"])


# ----------------------------------------------------------------------- broken chain → DLQ


def test_continuation_without_a_readable_keyframe_is_dead_lettered(settings: Settings, history) -> None:
    topic = settings.topic(bars_topic("1h"))
    frame = history[(history.index >= START) & (history.index < START.replace(day=20))]
    times = frame.index.as_unit("ms").asi8.astype(np.int64)
    values = frame.to_numpy(np.float64)
    n = 300
    producer = EventProducer(settings, "test")
    chain = BarChain(24)
    ids: list[str] = []

    def send(i: int, *, link_override: dict[str, Any] | None = None) -> None:
        """The 1h bar closing at hour ``n + i`` of the frame, linked by the chain (or by hand)."""
        tick_id = make_tick_id(settings.symbol, datetime.fromtimestamp(times[n + i] / 1000 + 3600, tz=UTC))
        window_t, window_v = times[i : n + i + 1], values[i : n + i + 1]
        start, link = chain.link(topic, tick_id, int(window_t[-1]) + 3_600_000, window_t, window_v)
        if link_override is not None:
            link = dataclasses.replace(link, **link_override)
        payload = BarPayload(tick_id, settings.symbol, "1h", window_t[start:], window_v[start:], link=link)
        producer.send_raw(topic, encode_bar(payload), tick_id, {"schema": BarClosed.SCHEMA_NAME})
        producer.flush()
        ids.append(tick_id)

    send(0)  # @0 keyframe
    chain.delivered(topic, ids[0], 0)
    send(1)  # @1 continuation of @0 (valid)
    send(2, link_override=dict(keyframe_offset=1, prev_tick_id="BTC/USD:USD|1999-01-01T00:00Z"))  # @2
    send(3, link_override=dict(keyframe_offset=99, prev_tick_id="BTC/USD:USD|1999-01-01T00:00Z"))  # @3
    chain.reset()
    send(4)  # @4 keyframe again
    parts = [decode_bar_window(v) for _, v in _read_partition(settings, topic)]
    assert [p.is_keyframe for p in parts] == [True, False, False, False, True]

    loop, runner = make_loop(settings, STRATEGY)
    stats = loop.run(max_messages=5, idle_timeout=30)
    assert (stats.handled, stats.dead_lettered) == (3, 2)
    assert runner.assembler.read_backs == 2  # @1 continued from memory; @2 and @3 tried to read back
    letters = read_all(settings, settings.topic(DEAD_LETTERS), DeadLetter, 2)
    assert sorted(letter.offset for letter in letters) == [2, 3]
    for letter in letters:
        assert letter.reason.startswith(f"continuation {ids[letter.offset]}"), letter.reason
        assert f"no keyframe at {topic}[0]@{1 if letter.offset == 2 else 99}" in letter.reason, letter.reason
    recs = read_all(settings, settings.topic(RECOMMENDATIONS), Recommendation, 3)
    assert sorted(r.tick_id for r in recs) == sorted([ids[0], ids[1], ids[4]])
