"""The BarClosed wire module: the numpy decoder reads exactly what the generic Avro decoder reads and
refuses the same; the array encoder writes what the registered schema (read by fastavro alone) reads."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from common import serde
from common.events import BarClosed, ExogenousFrame
from common.serde_bars import COLUMNS, BarWindow, ExogenousArrays, _string, _varint, decode_bar_window
from common.testkit import sample_bar_closed, sample_order_intent

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
    # v3's chain fields, in schema order.
    parts += [_varint(bar.keyframe_offset), _string(bar.prev_tick_id)]
    parts += [_varint(bar.window_start), _varint(bar.window_bars), _varint(bar.window_crc)]
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


# ------------------------------------------------------------------ the encoder, against the .avsc

AVSC = Path(__file__).resolve().parents[2] / "schemas" / "avro" / "BarClosed.avsc"


@dataclass(frozen=True)
class _Bar:
    """A BarArrays that is not the emitter's BarPayload: the encoder needs only the protocol."""

    tick_id: str
    symbol: str
    timeframe: str
    times: np.ndarray
    values: np.ndarray
    exogenous: tuple[ExogenousArrays, ...] = ()


def _read_with_registered_schema(data: bytes) -> dict[str, object]:
    """Decode with fastavro and the schema file alone (nothing from common.serde): header, body, no rest."""
    raw = json.loads(AVSC.read_text(encoding="utf-8"))
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))
    assert data[:10] == b"\xc3\x01" + fp
    buf = BytesIO(data)
    buf.seek(10)
    record = schemaless_reader(buf, parse_schema(raw, named_schemas={}), None)
    assert buf.tell() == len(data)
    assert isinstance(record, dict)
    return record


def _bits(values: object) -> bytes:
    """float64 bytes, so NaN compares equal to itself and -0.0 differs from 0.0."""
    return np.asarray(values, dtype="<f8").tobytes()


FLOATS = st.floats(width=64)  # NaN and +-inf included: the wire must carry every float64 bit pattern


@settings(max_examples=120, deadline=None)
@given(
    # both encoder paths: the vectorised 6-byte times (2001..2039) and the scalar one (any width)
    start=st.one_of(st.integers(-(10**12), 4 * 10**12), st.integers(1_000_000_000_000, 2_000_000_000_000)),
    steps=st.lists(st.one_of(st.just(3_600_000), st.integers(1, 10**9)), min_size=0, max_size=40),
    data=st.data(),
    with_exogenous=st.booleans(),
)
def test_fast_encoder_bytes_decode_with_the_registered_schema(
    start: int, steps: list[int], data: st.DataObject, with_exogenous: bool
) -> None:
    from common.serde_bars import BAR_ENCODER, bar_event, encode_bar

    assert BAR_ENCODER.enabled
    times = np.cumsum([start, *steps], dtype=np.int64)
    n = len(times)
    values = np.array(data.draw(st.lists(FLOATS, min_size=5 * n, max_size=5 * n)), dtype=np.float64)
    values = values.reshape(n, 5)
    exo: tuple[ExogenousArrays, ...] = ()
    if with_exogenous:
        k = data.draw(st.integers(0, n))
        texts = data.draw(st.lists(st.text(max_size=12), min_size=k, max_size=k))
        exo = (
            ExogenousArrays(
                "news_headlines",
                times[:k] - 60_000,
                times[:k],
                {"sentiment_polarity": np.array(data.draw(st.lists(FLOATS, min_size=k, max_size=k)))},
                {"title": texts},
            ),
            ExogenousArrays("exchange_reserves", times[:0], times[:0], {"exchange_reserves": np.empty(0)}),
        )
    bar = _Bar("T|ü", "BTC/USD:USD", "1h", times, values, exo)
    wire = encode_bar(bar)
    assert wire == serde.encode(bar_event(bar))  # the generic codec writes the same bytes

    record = _read_with_registered_schema(wire)
    assert (record["tick_id"], record["symbol"], record["timeframe"]) == ("T|ü", "BTC/USD:USD", "1h")
    open_time = record["open_time"]
    assert isinstance(open_time, list)
    as_ms = [int((t - EPOCH) / timedelta(milliseconds=1)) for t in open_time]
    assert as_ms == times.tolist()
    assert record["bar_open_time"] == EPOCH + timedelta(milliseconds=int(times[-1]))
    for i, c in enumerate(COLUMNS):
        assert _bits(record[c]) == _bits(values[:, i])
    frames = record["exogenous"]
    assert isinstance(frames, list) and len(frames) == len(exo)
    for got, sent in zip(frames, exo, strict=True):
        assert got["series"] == sent.series
        assert got["about_ts"] == sent.about_ms.tolist() and got["published_at"] == sent.published_ms.tolist()
        assert [x["column"] for x in got["numbers"]] == list(sent.numbers)
        for x in got["numbers"]:
            assert _bits(x["values"]) == _bits(sent.numbers[x["column"]])
        assert {x["column"]: x["values"] for x in got["texts"]} == sent.texts

    # and the consumers' array decoder reads it back bit for bit
    window = decode_bar_window(wire)
    assert window.times.tolist() == times.tolist()
    for i, c in enumerate(COLUMNS):
        assert _bits(window.columns[c]) == _bits(values[:, i])
    assert list(window.exogenous) == [f.series for f in exo]
    for sent in exo:
        back = window.exogenous[sent.series]
        assert back.about_ms.tolist() == sent.about_ms.tolist()
        assert {c: _bits(v) for c, v in back.numbers.items()} == {
            c: _bits(v) for c, v in sent.numbers.items()
        }
        assert back.texts == sent.texts


def test_encoder_switches_itself_off_when_the_generic_bytes_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema change the fast writer does not know (simulated: the generic writer's bytes change)
    turns the fast path off, and encode_bar then writes what the generic encoder writes."""
    from common import serde_bars

    bar = _Bar("T|x", "S", "1h", np.array([1_600_000_000_000], dtype=np.int64), np.ones((1, 5)))
    generic = serde.encode
    monkeypatch.setattr(serde, "encode", lambda event: generic(event) + b"\x00")
    encoder = serde_bars.BarEncoder()
    assert not encoder.enabled
    monkeypatch.setattr(serde_bars, "BAR_ENCODER", encoder)
    assert serde_bars.encode_bar(bar) == generic(serde_bars.bar_event(bar)) + b"\x00"
