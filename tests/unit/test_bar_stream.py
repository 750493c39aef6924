"""BarClosed v3 chains (ADR 0028): every continuation rebuilds to the keyframe's window, bit for bit.

The emitter half (``BarChain``) and the consumer half (``WindowAssembler``) run on the real
candles through the real encoders and decoders; a list stands in for one topic partition (the
broker round trip is covered by the integration tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from common import serde
from common.bar_stream import BarChain, ChainBroken, WindowAssembler, window_crc
from common.dataset import load_bundled_candles
from common.events import BarClosed, to_epoch_ms
from common.serde_bars import COLUMNS, BarWindow, decode_bar_window, encode_bar
from tick_emitter.core import BarPayload, BaseCandles, build_events, plan_tick, prepare_bars
from tick_emitter.synthetic import registry_of

START = datetime(2022, 7, 1, tzinfo=UTC)
HOURS = 120


@pytest.fixture(scope="module")
def real_base() -> BaseCandles:
    real = load_bundled_candles()
    return BaseCandles(real.index.as_unit("ms").asi8.astype(np.int64), real.to_numpy(np.float64), 60)


def _bars_at(base: BaseCandles, tick: datetime) -> list[BarPayload]:
    reg = registry_of([("h", "1h", 4200), ("q", "4h", 4200), ("d", "1d", 4200)])
    plan = plan_tick(tick, reg)
    _, bars, _ = build_events(
        "BTC/USD:USD", plan, prepare_bars(base, tick, plan), published_at=tick, deadline=timedelta(seconds=30)
    )
    return bars


@dataclass
class Topic:
    """One partition in memory: offset = index."""

    values: list[bytes]

    def read_back(self, topic: str, partition: int, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        for at in range(start, min(stop, len(self.values))):
            yield at, self.values[at]


def _send(
    chain: BarChain, topics: dict[str, Topic], bar: BarPayload, tick: datetime, *, generic: bool
) -> bytes:
    """What ``publish_tick`` does for one bar, with an immediate delivery report."""
    start, link = chain.link(bar.timeframe, bar.tick_id, to_epoch_ms(tick), bar.times, bar.values)
    part = replace(bar, times=bar.times[start:], values=bar.values[start:], link=link)
    data = serde.encode(part.to_event()) if generic else encode_bar(part)
    topic = topics.setdefault(bar.timeframe, Topic([]))
    topic.values.append(data)
    chain.delivered(bar.timeframe, bar.tick_id, len(topic.values) - 1)
    return data


def _same_window(got: BarWindow, bar: BarPayload) -> None:
    """Bit for bit the window a keyframe of ``bar`` carries."""
    full = decode_bar_window(encode_bar(bar))
    assert got.tick_id == full.tick_id and got.timeframe == full.timeframe
    assert got.bar_open_time == full.bar_open_time
    assert got.times.dtype == np.int64 and np.array_equal(got.times, full.times)
    for c in COLUMNS:
        assert got.columns[c].tobytes() == full.columns[c].tobytes(), c
    assert got.is_keyframe


def test_a_walk_of_real_ticks_rebuilds_every_window(real_base: BaseCandles) -> None:
    chain = BarChain(keyframe_hours=24)
    topics: dict[str, Topic] = {}
    assembler = WindowAssembler(lambda *a: iter(()))  # in order from the start: never reads back
    sizes: dict[str, list[int]] = {"key": [], "cont": []}  # 1h only
    for h in range(HOURS):
        tick = START + timedelta(hours=h)
        for bar in _bars_at(real_base, tick):
            data = _send(chain, topics, bar, tick, generic=h % 7 == 3)
            part = decode_bar_window(data)
            if bar.timeframe == "1h":
                sizes["key" if part.is_keyframe else "cont"].append(len(data))
            if not part.is_keyframe:
                assert len(part) == 1 and part.prev_tick_id and part.window_bars == len(bar)
            got = assembler.window(part, bar.timeframe, 0, len(topics[bar.timeframe].values) - 1)
            _same_window(got, bar)
    # One keyframe a day per topic (1h: every 24 ticks; 1d: every message), the rest continuations.
    kinds = {tf: [decode_bar_window(v).is_keyframe for v in t.values] for tf, t in topics.items()}
    assert kinds["1h"] == [h % 24 == 0 for h in range(HOURS)]
    assert all(kinds["1d"]) and sum(kinds["4h"]) == HOURS // 24
    assert assembler.read_backs == 0
    # A 4,200-bar window is ~190 KB; its continuation is one bar plus the chain fields.
    assert min(sizes["key"]) > 150_000 and max(sizes["cont"]) < 200


def test_a_revised_candle_and_a_skipped_tick_are_carried(real_base: BaseCandles) -> None:
    chain = BarChain(keyframe_hours=24)
    topics: dict[str, Topic] = {}
    assembler = WindowAssembler(None)
    base = real_base
    for h in range(12):
        tick = START + timedelta(hours=h)
        if h == 6:
            # The exchange revised a candle 100 hours back: the next continuation starts there.
            values = base.values.copy()
            i = int(np.searchsorted(base.times, to_epoch_ms(tick) - 100 * 3_600_000))
            values[i, 3] += 0.5
            base = replace(base, values=values)
        bars = [b for b in _bars_at(base, tick) if b.timeframe == "1h"]
        if h == 9:
            continue  # the tick's bar was not published (degraded): the next continues from h=8
        (bar,) = bars
        data = _send(chain, topics, bar, tick, generic=False)
        part = decode_bar_window(data)
        assert part.is_keyframe == (h == 0)
        assert len(part) == {0: 4200, 6: 100, 10: 2}.get(h, 1)
        _same_window(assembler.window(part, "1h", 0, len(topics["1h"].values) - 1), bar)


def _walk(base: BaseCandles, hours: int, chain: BarChain) -> tuple[Topic, list[BarPayload]]:
    topics: dict[str, Topic] = {}
    sent = []
    for h in range(hours):
        tick = START + timedelta(hours=h)
        (bar,) = [b for b in _bars_at(base, tick) if b.timeframe == "1h"]
        _send(chain, topics, bar, tick, generic=False)
        sent.append(bar)
    return topics["1h"], sent


def test_a_consumer_without_the_previous_window_reads_back_once(real_base: BaseCandles) -> None:
    topic, sent = _walk(real_base, 40, BarChain(keyframe_hours=24))
    assembler = WindowAssembler(topic.read_back)
    for at in range(30, 40):  # a restart at offset 30: the chain starts at the keyframe at 24
        part = decode_bar_window(topic.values[at])
        assert part.keyframe_offset == 24
        _same_window(assembler.window(part, "t", 0, at), sent[at])
    assert assembler.read_backs == 1
    # A rewind re-delivers 33..36: continued from memory, no second read-back.
    for at in range(33, 37):
        _same_window(assembler.window(decode_bar_window(topic.values[at]), "t", 0, at), sent[at])
    assert assembler.read_backs == 1


def test_a_wrong_held_window_is_caught_by_the_crc_and_repaired(real_base: BaseCandles) -> None:
    topic, sent = _walk(real_base, 30, BarChain(keyframe_hours=24))
    assembler = WindowAssembler(topic.read_back)
    prev = decode_bar_window(topic.values[27])
    held = assembler.window(prev, "t", 0, 27)  # a fresh consumer: one read-back
    assert assembler.read_backs == 1
    # Corrupt the held copy of bar 27's window (one close, one ulp): 28 must not build on it.
    close = held.columns["close"].copy()
    close[-5] = np.nextafter(close[-5], np.inf)
    assembler._hold("t", 0, replace(held, columns={**held.columns, "close": close}))
    _same_window(assembler.window(decode_bar_window(topic.values[28]), "t", 0, 28), sent[28])
    assert assembler.read_backs == 2  # the CRC refused the held window; the chain was read again


def test_a_chain_that_cannot_be_rebuilt_is_refused(real_base: BaseCandles) -> None:
    topic, _ = _walk(real_base, 30, BarChain(keyframe_hours=24))
    part = decode_bar_window(topic.values[28])
    with pytest.raises(ChainBroken, match="no way to read the chain back"):
        WindowAssembler(None).window(part, "t", 0, 28)
    with pytest.raises(ChainBroken, match="no keyframe"):  # retention took it
        WindowAssembler(Topic([]).read_back).window(part, "t", 0, 28)
    not_a_keyframe = Topic([*topic.values[:24], topic.values[25], *topic.values[25:]])
    with pytest.raises(ChainBroken, match="no keyframe"):
        WindowAssembler(not_a_keyframe.read_back).window(part, "t", 0, 28)
    broken = Topic([*topic.values[:26], topic.values[25], *topic.values[27:]])  # 26 lost, 25 twice
    with pytest.raises(ChainBroken, match="ends at"):
        WindowAssembler(broken.read_back).window(part, "t", 0, 28)
    assert isinstance(ChainBroken("x"), serde.SerdeError)  # consumers dead-letter it like bad bytes


def test_the_emitter_sends_a_keyframe_when_it_cannot_continue(real_base: BaseCandles) -> None:
    tick = START
    bars = [b for b in _bars_at(real_base, tick) if b.timeframe == "1h"]
    nxt = [b for b in _bars_at(real_base, tick + timedelta(hours=1)) if b.timeframe == "1h"]
    later = tick + timedelta(hours=1)

    def link(chain: BarChain, bar: BarPayload, at: datetime) -> int:
        return chain.link("1h", bar.tick_id, to_epoch_ms(at), bar.times, bar.values)[1].keyframe_offset

    chain = BarChain(keyframe_hours=24)
    assert link(chain, bars[0], tick) == -1
    assert chain.awaiting_keyframe()
    assert link(chain, nxt[0], later) == -1  # the keyframe's offset is not known yet
    chain.delivered("1h", nxt[0].tick_id, 7)
    assert not chain.awaiting_keyframe()
    assert link(chain, bars[0], tick) == -1  # an older window cannot continue a newer one
    chain = BarChain(keyframe_hours=24)
    link(chain, bars[0], tick)
    chain.delivered("1h", bars[0].tick_id, 3)
    assert link(chain, nxt[0], later) == 3
    chain.reset()  # a produce failed: start over
    assert link(chain, nxt[0], later) == -1
    off = BarChain(keyframe_hours=0)
    link(off, bars[0], tick)
    off.delivered("1h", bars[0].tick_id, 0)
    assert link(off, nxt[0], later) == -1  # 0: keyframes only, the wire before v3


def test_window_crc_reads_bytes_and_column_order() -> None:
    times = np.array([1, 2, 3], dtype=np.int64)
    cols = [np.array([1.0, 2.0, 3.0]) * k for k in range(1, 6)]
    crc = window_crc(times, cols)
    assert crc != window_crc(times, cols[::-1])
    zero = [c.copy() for c in cols]
    zero[0][0] = 0.0
    negzero = [c.copy() for c in cols]
    negzero[0][0] = -0.0
    assert window_crc(times, zero) != window_crc(times, negzero)


def test_messages_before_v3_read_as_keyframes() -> None:
    from common.testkit import sample_bar_closed

    bar = sample_bar_closed(bars=20)
    for sv in serde.load_schema_set().history[BarClosed.SCHEMA_NAME][:-1]:
        old = {k: v for k, v in bar.to_dict().items() if k in {f["name"] for f in sv.raw["fields"]}}
        data = serde.encode_raw(old, BarClosed.SCHEMA_NAME, sv.version)
        window = decode_bar_window(data)
        assert window.is_keyframe and serde.decode(data, BarClosed).is_keyframe
        assert WindowAssembler(None).window(window) is window
