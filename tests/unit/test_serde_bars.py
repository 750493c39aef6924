"""The numpy BarClosed decoder reads exactly what the generic Avro decoder reads, and refuses the same."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import serde
from common.events import BarClosed, ExogenousFrame
from common.serde_bars import COLUMNS, BarWindow, decode_bar_window
from common.testkit import sample_bar_closed, sample_order_intent
from tick_emitter.wire import _string, _varint

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _frames(bar: BarClosed, n: int) -> tuple[ExogenousFrame, ...]:
    """A numeric series, a news-like series (text) and an empty one (NaN: see test_exogenous_wire)."""
    last = int((bar.bar_open_time - EPOCH) / timedelta(milliseconds=1))
    pub = [last - 3_600_000 * (n - i) // 2 for i in range(n)]
    return (
        ExogenousFrame(
            "funding_binance_8h",
            tuple(p - 8 * 3_600_000 for p in pub),
            tuple(pub),
            (("funding_rate", tuple(1e-4 * (i - 11) for i in range(n))),),
        ),
        ExogenousFrame(
            "news_headlines",
            tuple(p - 60_000 for p in pub),
            tuple(pub),
            (("sentiment_polarity", tuple(-0.25 if i % 3 else 0.5 for i in range(n))),),
            (("title", tuple(f"BTC ünïcode {i}" * (i % 4) for i in range(n))), ("url", ("",) * n)),
        ),
        ExogenousFrame("exchange_reserves", (), (), (("exchange_reserves", ()),)),
    )


def _same(window: BarWindow, bar: BarClosed) -> None:
    assert window.to_event() == bar
    assert (window.tick_id, window.symbol, window.timeframe, window.bar_open_time) == (
        bar.tick_id,
        bar.symbol,
        bar.timeframe,
        bar.bar_open_time,
    )
    for c in COLUMNS:
        assert window.columns[c].tolist() == list(getattr(bar, c))


def _bar(offsets_ms: list[int], values: list[float], start_ms: int) -> BarClosed:
    times = []
    t = start_ms
    for step in offsets_ms:
        t += step
        times.append(EPOCH + timedelta(milliseconds=t))
    n = len(times)
    return BarClosed(
        tick_id="T|x",
        symbol="BTC/USD:USD",
        timeframe="1h",
        bar_open_time=times[-1],
        open_time=tuple(times),
        open=tuple(values[:n]),
        high=tuple(values[:n]),
        low=tuple(values[:n]),
        close=tuple(values[:n]),
        volume=tuple(values[:n]),
    )


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(-(10**12), 4 * 10**12),
    # mixed varint widths: small steps, hour steps, huge jumps
    steps=st.lists(
        st.one_of(st.integers(1, 200), st.just(3_600_000), st.integers(1, 10**11)), min_size=1, max_size=60
    ),
    values=st.lists(st.floats(allow_nan=False, width=64), min_size=60, max_size=60),
)
def test_decodes_exactly_what_the_generic_decoder_reads(
    start: int, steps: list[int], values: list[float]
) -> None:
    bar = _bar(steps, values, start)
    data = serde.encode(bar)
    assert serde.decode(data, BarClosed) == bar
    _same(decode_bar_window(data), bar)


def test_real_size_window_and_empty_window() -> None:
    bar = sample_bar_closed(bars=4200)
    _same(decode_bar_window(serde.encode(bar)), bar)
    empty = BarClosed(
        tick_id="T|x",
        symbol="S",
        timeframe="1h",
        bar_open_time=EPOCH,
        open_time=(),
        open=(),
        high=(),
        low=(),
        close=(),
        volume=(),
    )
    window = decode_bar_window(serde.encode(empty))
    assert len(window) == 0 and window.to_event() == empty


def _body(bar: BarClosed, block: int, negative: bool) -> bytes:
    """The same record written with arrays split into blocks of ``block`` items (both block forms)."""

    def blocks(items: list[bytes]) -> bytes:
        out = b""
        for i in range(0, len(items), block):
            chunk = b"".join(items[i : i + block])
            n = len(items[i : i + block])
            out += (_varint(-n) + _varint(len(chunk)) if negative else _varint(n)) + chunk
        return out + b"\x00"

    ms = [int((t - EPOCH) / timedelta(milliseconds=1)) for t in bar.open_time]
    parts = [
        serde.MAGIC,
        serde.fingerprint_of(BarClosed.SCHEMA_NAME),
        _string(bar.tick_id),
        _string(bar.symbol),
        _string(bar.timeframe),
        _varint(ms[-1]),
        blocks([_varint(t) for t in ms]),
    ]
    parts += [blocks([struct.pack("<d", v) for v in getattr(bar, c)]) for c in COLUMNS]
    frames = []
    for f in bar.exogenous:
        numbers = [_string(c) + blocks([struct.pack("<d", v) for v in vs]) for c, vs in f.numbers]
        texts = [_string(c) + blocks([_string(v) for v in vs]) for c, vs in f.texts]
        frames.append(
            _string(f.series)
            + blocks([_varint(t) for t in f.about_ts])
            + blocks([_varint(t) for t in f.published_at])
            + blocks(numbers)
            + blocks(texts)
        )
    parts.append(blocks(frames))
    return b"".join(parts)


@pytest.mark.parametrize("exogenous", [False, True])
@pytest.mark.parametrize("negative", [False, True])
def test_every_array_block_form_of_the_avro_spec(negative: bool, exogenous: bool) -> None:
    bar = sample_bar_closed(bars=50)
    if exogenous:
        bar = replace(bar, exogenous=_frames(bar, 23))
    data = _body(bar, 7, negative)
    assert serde.decode(data, BarClosed) == bar  # fastavro agrees these bytes are that record
    _same(decode_bar_window(data), bar)


def test_refuses_what_the_generic_decoder_refuses() -> None:
    bar = sample_bar_closed(bars=10)
    good = serde.encode(bar)
    bad = {
        "truncated": good[:-5],
        "trailing bytes": good + b"\x00",
        "wrong type": serde.encode(sample_order_intent()),
        "bad magic": b"\x00\x01" + good[2:],
    }
    for why, data in bad.items():
        with pytest.raises(serde.SerdeError):
            serde.decode(data, BarClosed)
        with pytest.raises(serde.SerdeError):
            decode_bar_window(data)
            pytest.fail(f"accepted: {why}")
    # Valid Avro, invalid BarClosed: times not increasing, bar_open_time not the last time.
    record = bar.to_dict()
    record["open_time"] = record["open_time"][::-1]
    record["bar_open_time"] = record["open_time"][-1]
    unsorted = serde.encode_raw(record, BarClosed.SCHEMA_NAME)
    record = bar.to_dict()
    record["bar_open_time"] = record["open_time"][0]
    wrong_last = serde.encode_raw(record, BarClosed.SCHEMA_NAME)
    record = bar.to_dict()
    record["close"] = record["close"][:-1]
    short = serde.encode_raw(record, BarClosed.SCHEMA_NAME)
    record = bar.to_dict()
    record["timeframe"] = "7x"
    timeframe = serde.encode_raw(record, BarClosed.SCHEMA_NAME)
    for data in (unsorted, wrong_last, short, timeframe):
        with pytest.raises(serde.SerdeError):
            serde.decode(data, BarClosed)
        with pytest.raises(serde.SerdeError):
            decode_bar_window(data)


def test_every_kept_writer_version_still_decodes() -> None:
    bar = sample_bar_closed(bars=30)
    for sv in serde.load_schema_set().history[BarClosed.SCHEMA_NAME]:
        data = serde.encode_raw(bar.to_dict(), BarClosed.SCHEMA_NAME, sv.version)
        _same(decode_bar_window(data), serde.decode(data, BarClosed))


def test_arrays_are_read_only_views_and_window_frame_copies() -> None:
    from strategy_consumers.runner import window_frame

    bar = sample_bar_closed(bars=40)
    window = decode_bar_window(serde.encode(bar))
    assert not window.close.flags.writeable
    frame = window_frame(window, 24)
    frame.iloc[0, 0] = -1.0  # strategies may modify their frame
    assert window.columns["open"][-24] == bar.open[-24]
    assert list(frame.index) == [t for t in bar.open_time[-24:]]
    assert np.array_equal(frame["close"].to_numpy(), np.array(bar.close[-24:]))


def test_fast_path_is_on_for_the_current_layout_and_off_for_another(monkeypatch: pytest.MonkeyPatch) -> None:
    from common import serde_bars

    assert serde_bars._fast_fingerprint() == serde.fingerprint_of(BarClosed.SCHEMA_NAME)
    bar = sample_bar_closed(bars=12)
    data = serde.encode(bar)
    calls: list[bytes] = []
    generic = serde.decode

    def spy(raw: bytes, expected: type | None = None) -> object:
        calls.append(raw)
        return generic(raw, expected)

    monkeypatch.setattr(serde, "decode", spy)
    _same(decode_bar_window(data), bar)
    assert calls == []  # current layout: read directly
    monkeypatch.setattr(serde_bars, "_LAYOUT", serde_bars._LAYOUT[:-1])
    serde_bars._fast_fingerprint.cache_clear()
    try:
        _same(decode_bar_window(data), bar)
        assert calls == [data]  # a layout this reader does not know: the generic decoder
    finally:
        monkeypatch.undo()
        serde_bars._fast_fingerprint.cache_clear()
