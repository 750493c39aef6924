"""The one BarClosed wire module: fast encoding from arrays and fast decoding into arrays.

BarClosed is the one message on the latency path (issue 17) and the replay's throughput path, so
it has array-level twins of the generic codec in ``common.serde``. They write and read the *same
bytes* (Avro single-object encoding of the current ``schemas/avro/BarClosed.avsc``); nothing else
in the tree encodes or decodes BarClosed by hand. ``common.serde`` stays the schema-driven
reference every other message type uses, and what this module is checked against.

Encoding (:func:`encode_bar`, the tick emitter and the replay): building a validated BarClosed and
running the generic Avro writer costs ~1.3 ms per 720-bar window, the whole replay budget. A
payload is valid by construction (sorted unique times from ``resample``, finite validated prices),
so its Avro body is written straight from the numpy arrays. The output is compared with
``common.serde.encode`` at import and in tests; if a schema change ever makes them differ, the fast
path switches itself off and ``encode_bar`` falls back to the generic encoder.

Decoding (:func:`decode_bar_window`, strategy consumers and meta consumer): a 4,200-bar BarClosed
through fastavro and the validating dataclass costs ~9 ms (4,200 ``datetime`` objects and 21,000
Python floats built, checked, then turned back into arrays by the strategy). An Avro
``array<double>`` block is ``count`` then ``count`` little-endian float64s, which numpy reads in
place with ``frombuffer``, and the ``array<long>`` of open times is a run of zig-zag varints that
numpy decodes in a few vector operations. The reader accepts every array block form the Avro spec
allows (several blocks, negative counts with a byte size), and applies the same checks as
``BarClosed.__post_init__``.

Messages written with any other schema version (kept in ``schemas/avro/history``) go through the
generic resolving decoder and are converted, so old writers keep working. Anything malformed
raises :class:`common.serde.SerdeError`, like the generic decoder, so consumers dead-letter it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from common import serde
from common.events import BarClosed, ExogenousFrame, to_epoch_ms
from common.timeframes import parse_timeframe

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BAR_ENCODER",
    "COLUMNS",
    "KEYFRAME",
    "BarArrays",
    "BarEncoder",
    "BarWindow",
    "ExogenousArrays",
    "WindowLink",
    "bar_event",
    "decode_bar_window",
    "encode_bar",
]

COLUMNS = BarClosed._COLUMNS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ExogenousArrays:
    """One exogenous series of a bar message as arrays (the fast twin of ``ExogenousFrame``).

    ``about_ms``/``published_ms``: int64 epoch ms, sorted by publication; ``numbers``: column ->
    float64 array; ``texts``: column -> list of str; both in catalog order.
    """

    series: str
    about_ms: npt.NDArray[Any]
    published_ms: npt.NDArray[Any]
    numbers: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.about_ms.shape[0])

    @classmethod
    def from_event(cls, frame: ExogenousFrame) -> ExogenousArrays:
        return cls(
            frame.series,
            np.asarray(frame.about_ts, dtype=np.int64),
            np.asarray(frame.published_at, dtype=np.int64),
            {c: np.asarray(v, dtype=np.float64) for c, v in frame.numbers},
            {c: list(v) for c, v in frame.texts},
        )

    def to_event(self) -> ExogenousFrame:
        return ExogenousFrame(
            self.series,
            tuple(self.about_ms.tolist()),
            tuple(self.published_ms.tolist()),
            tuple((c, tuple(v.tolist())) for c, v in self.numbers.items()),
            tuple((c, tuple(v)) for c, v in self.texts.items()),
        )

    @classmethod
    def from_frame(cls, series: str, frame: pd.DataFrame) -> ExogenousArrays:
        """From the loader/store layout (``about_ts``, ``published_at`` tz-aware, value columns).

        Times are truncated to the millisecond (what the wire carries); the exogenous sources
        are at minute resolution, so nothing is lost.
        """
        about = frame["about_ts"].array.as_unit("ns").asi8 // _NS_PER_MS
        published = frame["published_at"].array.as_unit("ns").asi8 // _NS_PER_MS
        numbers: dict[str, npt.NDArray[Any]] = {}
        texts: dict[str, list[str]] = {}
        for c in frame.columns:
            if c in ("about_ts", "published_at"):
                continue
            col = frame[c]
            if col.dtype == np.float64:
                numbers[c] = col.to_numpy()
            else:
                texts[c] = ["" if v is None else str(v) for v in col.tolist()]
        return cls(
            series, np.asarray(about, dtype=np.int64), np.asarray(published, dtype=np.int64), numbers, texts
        )

    def slice(self, start: int, stop: int) -> ExogenousArrays:
        """Observations ``start:stop`` (views of the arrays)."""
        return ExogenousArrays(
            self.series,
            self.about_ms[start:stop],
            self.published_ms[start:stop],
            {c: v[start:stop] for c, v in self.numbers.items()},
            {c: v[start:stop] for c, v in self.texts.items()},
        )

    def to_frame(self) -> pd.DataFrame:
        """The loader's frame layout, columns in catalog order (unknown series: numbers, then texts)."""
        import pandas as pd

        from common.exogenous.catalog import get_series

        def utc_ns(ms: npt.NDArray[Any]) -> pd.DatetimeIndex:
            return pd.DatetimeIndex(ms.astype("datetime64[ms]"), tz="UTC").as_unit("ns")

        data: dict[str, Any] = {"about_ts": utc_ns(self.about_ms), "published_at": utc_ns(self.published_ms)}
        cols: dict[str, Any] = {c: np.array(v, dtype=np.float64) for c, v in self.numbers.items()}
        cols.update({c: np.array(v, dtype=object) for c, v in self.texts.items()})
        try:
            order = [c for c in get_series(self.series).value_columns if c in cols]
        except KeyError:
            order = []
        for c in (*order, *(c for c in cols if c not in order)):
            data[c] = cols[c]
        return pd.DataFrame(data)


@dataclass(frozen=True, slots=True)
class BarWindow:
    """A BarClosed as arrays: ``times`` (epoch ms, int64) and one float64 array per OHLCV column.

    The arrays are read-only views of the message bytes (no copy); callers that modify must copy.
    """

    tick_id: str
    symbol: str
    timeframe: str
    bar_open_time: datetime
    times: npt.NDArray[Any]
    columns: dict[str, npt.NDArray[Any]]
    #: Exogenous series by name (empty for price-only timeframes and pre-v2 writers).
    exogenous: dict[str, ExogenousArrays] = field(default_factory=dict)
    #: v3 chain fields (see ``BarClosed``): -1 for a keyframe, else the chain's keyframe offset.
    keyframe_offset: int = -1
    prev_tick_id: str = ""
    window_start: int = 0
    window_bars: int = 0
    window_crc: int = 0

    SCHEMA_NAME = BarClosed.SCHEMA_NAME

    @property
    def is_keyframe(self) -> bool:
        """The arrays are the whole window (a continuation carries only its changed tail)."""
        return self.keyframe_offset < 0

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @property
    def close(self) -> npt.NDArray[Any]:
        return self.columns["close"]

    @classmethod
    def from_event(cls, bar: BarClosed) -> BarWindow:
        times = np.fromiter((to_epoch_ms(t) for t in bar.open_time), dtype=np.int64, count=len(bar))
        cols = {c: np.asarray(getattr(bar, c), dtype=np.float64) for c in COLUMNS}
        exo = {f.series: ExogenousArrays.from_event(f) for f in bar.exogenous}
        return cls(
            bar.tick_id,
            bar.symbol,
            bar.timeframe,
            bar.bar_open_time,
            times,
            cols,
            exo,
            bar.keyframe_offset,
            bar.prev_tick_id,
            bar.window_start,
            bar.window_bars,
            bar.window_crc,
        )

    def to_event(self) -> BarClosed:
        open_time = tuple(_EPOCH + timedelta(milliseconds=int(t)) for t in self.times.tolist())
        return BarClosed(
            tick_id=self.tick_id,
            symbol=self.symbol,
            timeframe=self.timeframe,
            bar_open_time=self.bar_open_time,
            open_time=open_time,
            **{c: tuple(self.columns[c].tolist()) for c in COLUMNS},
            exogenous=tuple(a.to_event() for a in self.exogenous.values()),
            keyframe_offset=self.keyframe_offset,
            prev_tick_id=self.prev_tick_id,
            window_start=self.window_start,
            window_bars=self.window_bars,
            window_crc=self.window_crc,
        )

    def exogenous_frames(self) -> dict[str, pd.DataFrame]:
        """Every carried series in the loader's frame layout (what ``Strategy.recommend`` takes)."""
        return {name: arrays.to_frame() for name, arrays in self.exogenous.items()}


class _Reader:
    """Cursor over the Avro body; every read checks bounds and raises SerdeError."""

    def __init__(self, data: bytes | bytearray | memoryview, pos: int) -> None:
        self.buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.pos = pos
        self.end = len(data)

    def fail(self, why: str) -> serde.SerdeError:
        return serde.SerdeError(f"body does not decode as btcmeta.BarClosed current: {why}")

    def long(self) -> int:
        shift = 0
        z = 0
        while True:
            if self.pos >= self.end:
                raise self.fail("truncated long")
            b = self.buf[self.pos]
            self.pos += 1
            z |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                raise self.fail("long longer than 10 bytes")
        return (z >> 1) ^ -(z & 1)

    def string(self) -> str:
        n = self.long()
        if n < 0 or self.pos + n > self.end:
            raise self.fail("bad string length")
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"string is not UTF-8: {exc}") from exc

    def block_count(self) -> int:
        """Items in the next array block (0 ends the array); a negative count is followed by its size."""
        n = self.long()
        if n < 0:
            n = -n
            size = self.long()
            if size < 0:
                raise self.fail("negative block size")
        return n

    def doubles(self) -> npt.NDArray[Any]:
        parts: list[npt.NDArray[Any]] = []
        while (n := self.block_count()) != 0:
            if self.pos + 8 * n > self.end:
                raise self.fail("truncated double array")
            parts.append(np.frombuffer(self.buf, dtype="<f8", count=n, offset=self.pos))
            self.pos += 8 * n
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)

    def strings(self) -> list[str]:
        out: list[str] = []
        while (n := self.block_count()) != 0:
            out += [self.string() for _ in range(n)]
        return out

    def records(self) -> int:
        """Item count of the next block of an array of records (0 ends the array)."""
        return self.block_count()

    def longs(self) -> npt.NDArray[Any]:
        parts: list[npt.NDArray[Any]] = []
        while (n := self.block_count()) != 0:
            parts.append(self._varints(n))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def _varints(self, n: int) -> npt.NDArray[Any]:
        """``n`` zig-zag varints starting at the cursor, decoded with vector operations."""
        raw = np.frombuffer(self.buf, dtype=np.uint8, count=min(10 * n, self.end - self.pos), offset=self.pos)
        ends = np.flatnonzero(raw < 0x80)
        if ends.size < n:
            raise self.fail("truncated long array")
        ends = ends[:n]
        used = int(ends[-1]) + 1
        starts = np.empty(n, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        lengths = ends - starts + 1
        if int(lengths.max()) > 10:
            raise self.fail("long longer than 10 bytes")
        body = raw[:used]
        if lengths.min() == lengths.max():  # the common case: every value the same width
            width = int(lengths[0])
            groups = (body.reshape(n, width) & 0x7F).astype(np.uint64)
            shifts = np.arange(0, 7 * width, 7, dtype=np.uint64)
            z = np.bitwise_or.reduce(groups << shifts, axis=1)
        else:
            pos_in_value = np.arange(used, dtype=np.int64) - np.repeat(starts, lengths)
            parts = (body & 0x7F).astype(np.uint64) << (7 * pos_in_value).astype(np.uint64)
            z = np.bitwise_or.reduceat(parts, starts)
        self.pos += used
        sign = -((z & np.uint64(1)).astype(np.int64))
        out: npt.NDArray[Any] = (z >> np.uint64(1)).astype(np.int64) ^ sign
        return out


#: The field layout this reader is written for; a different current schema turns the fast path off.
_EXOGENOUS = (
    "array<record{series:string,about_ts:array<long>,published_at:array<long>,"
    "numbers:array<record{column:string,values:array<double>}>,"
    "texts:array<record{column:string,values:array<string>}>}>"
)
_LAYOUT = (
    ("tick_id", "string"),
    ("symbol", "string"),
    ("timeframe", "string"),
    ("bar_open_time", "long"),
    ("open_time", "array<long>"),
    *((c, "array<double>") for c in COLUMNS),
    ("exogenous", _EXOGENOUS),
    ("keyframe_offset", "long"),
    ("prev_tick_id", "string"),
    ("window_start", "long"),
    ("window_bars", "long"),
    ("window_crc", "long"),
)


def _type_name(t: Any) -> str:
    if isinstance(t, dict):
        if t.get("type") == "array":
            return f"array<{_type_name(t['items'])}>"
        if t.get("type") == "record":
            return "record{" + ",".join(f"{f['name']}:{_type_name(f['type'])}" for f in t["fields"]) + "}"
        return _type_name(t["type"])
    return str(t)


def _read_exogenous(r: _Reader) -> dict[str, ExogenousArrays]:
    out: dict[str, ExogenousArrays] = {}
    while (n := r.records()) != 0:
        for _ in range(n):
            series = r.string()
            about, published = r.longs(), r.longs()
            numbers: dict[str, npt.NDArray[Any]] = {}
            while (k := r.records()) != 0:
                for _ in range(k):
                    col = r.string()
                    numbers[col] = r.doubles()
            texts: dict[str, list[str]] = {}
            while (k := r.records()) != 0:
                for _ in range(k):
                    col = r.string()
                    texts[col] = r.strings()
            _check_exogenous(series, about, published, numbers, texts, out, r)
            out[series] = ExogenousArrays(series, about, published, numbers, texts)
    return out


def _check_exogenous(
    series: str,
    about: npt.NDArray[Any],
    published: npt.NDArray[Any],
    numbers: dict[str, npt.NDArray[Any]],
    texts: dict[str, list[str]],
    seen: dict[str, ExogenousArrays],
    r: _Reader,
) -> None:
    """The invariants ``ExogenousFrame.__post_init__`` and ``BarClosed`` enforce, on arrays."""
    if not series:
        raise r.fail("invalid value: ExogenousFrame.series: must not be empty")
    if series in seen:
        raise r.fail(f"invalid value: BarClosed.exogenous: duplicate series {series!r}")
    n = about.shape[0]
    if published.shape[0] != n:
        got = published.shape[0]
        raise r.fail(f"invalid value: ExogenousFrame {series}: {got} published_at but {n} about_ts")
    if n > 1 and not bool(np.all(published[1:] >= published[:-1])):
        raise r.fail(f"invalid value: ExogenousFrame {series}: published_at is not non-decreasing")
    if set(numbers) & set(texts):
        raise r.fail(f"invalid value: ExogenousFrame {series}: duplicate column")
    lengths = [(c, int(v.shape[0])) for c, v in numbers.items()] + [(c, len(v)) for c, v in texts.items()]
    for c, got in lengths:
        if got != n:
            raise r.fail(f"invalid value: ExogenousFrame {series}.{c}: {got} values but {n} observations")


@cache
def _fast_fingerprint() -> bytes | None:
    """The current BarClosed fingerprint when its layout is the one read here, else None."""
    sv = serde.load_schema_set().get(BarClosed.SCHEMA_NAME)
    layout = tuple((f["name"], _type_name(f["type"])) for f in sv.raw["fields"])
    return sv.fingerprint if layout == _LAYOUT else None


def decode_bar_window(data: bytes | bytearray | memoryview) -> BarWindow:
    """Decode a BarClosed message (any kept writer version) into arrays, with BarClosed's checks."""
    writer = serde.parse_header(data)
    if writer.name != BarClosed.SCHEMA_NAME:
        raise serde.SerdeError(f"expected {BarClosed.SCHEMA_NAME}, got {writer.name}")
    if writer.fingerprint != _fast_fingerprint():
        # An older writer (or a current schema this reader was not written for): resolve generically.
        return BarWindow.from_event(serde.decode(data, BarClosed))
    r = _Reader(data, serde.HEADER_SIZE)
    tick_id, symbol, timeframe = r.string(), r.string(), r.string()
    bar_open_ms = r.long()
    times = r.longs()
    cols = {c: r.doubles() for c in COLUMNS}
    exogenous = _read_exogenous(r)
    keyframe_offset, prev_tick_id = r.long(), r.string()
    window_start, window_bars, window_crc = r.long(), r.long(), r.long()
    if r.pos != r.end:
        raise r.fail(f"{r.end - r.pos} trailing bytes")
    _check(tick_id, symbol, timeframe, bar_open_ms, times, cols, r)
    if keyframe_offset < -1 or window_bars < 0:
        raise r.fail("invalid value: BarClosed: keyframe_offset must be >= -1 and window_bars >= 0")
    if keyframe_offset >= 0 and not prev_tick_id:
        raise r.fail("invalid value: BarClosed: a continuation (keyframe_offset >= 0) needs prev_tick_id")
    try:
        bar_open_time = _EPOCH + timedelta(milliseconds=bar_open_ms)
    except OverflowError as exc:
        raise r.fail(f"invalid value: bar_open_time {bar_open_ms} ms is out of range") from exc
    return BarWindow(
        tick_id,
        symbol,
        timeframe,
        bar_open_time,
        times,
        cols,
        exogenous,
        keyframe_offset,
        prev_tick_id,
        window_start,
        window_bars,
        window_crc,
    )


def _check(
    tick_id: str,
    symbol: str,
    timeframe: str,
    bar_open_ms: int,
    times: npt.NDArray[Any],
    cols: dict[str, Any],
    r: _Reader,
) -> None:
    """The invariants ``BarClosed.__post_init__`` enforces, on arrays."""
    if not tick_id:
        raise r.fail("invalid value: BarClosed.tick_id: must not be empty")
    if not symbol:
        raise r.fail("invalid value: BarClosed.symbol: must not be empty")
    try:
        parse_timeframe(timeframe)
    except ValueError as exc:
        raise r.fail(f"invalid value: {exc}") from exc
    n = times.shape[0]
    for c in COLUMNS:
        if cols[c].shape[0] != n:
            raise r.fail(f"invalid value: BarClosed.{c}: {cols[c].shape[0]} values but {n} open times")
    if n > 1 and not bool(np.all(times[1:] > times[:-1])):
        raise r.fail("invalid value: BarClosed.open_time: not strictly increasing")
    if n and int(times[-1]) != bar_open_ms:
        raise r.fail("invalid value: BarClosed.bar_open_time is not the last open_time")


# ------------------------------------------------------------------------------------ encoding


class BarArrays(Protocol):
    """A BarClosed still as arrays: what :func:`encode_bar` writes (``tick_emitter.core.BarPayload``).

    A protocol, so ``common`` does not import the emitter. ``times``: int64 epoch ms, strictly
    increasing, the last one the bar's open time (at least one); ``values``: float64 ``[n, 5]`` in
    ``COLUMNS`` order; ``exogenous``: one entry per series, no duplicates. An optional ``link``
    (:class:`WindowLink`) makes it a continuation; without one it is a keyframe.
    """

    @property
    def tick_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def timeframe(self) -> str: ...
    @property
    def times(self) -> npt.NDArray[Any]: ...
    @property
    def values(self) -> npt.NDArray[Any]: ...
    @property
    def exogenous(self) -> Sequence[ExogenousArrays]: ...


@dataclass(frozen=True, slots=True)
class WindowLink:
    """A BarClosed's v3 chain fields (see ``BarClosed``); the default is a plain keyframe."""

    keyframe_offset: int = -1
    prev_tick_id: str = ""
    window_start: int = 0
    window_bars: int = 0
    window_crc: int = 0


KEYFRAME = WindowLink()


def _varint(n: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint with the least significant group first."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _string(s: str) -> bytes:
    """Avro string: byte length as a long, then the UTF-8 bytes."""
    raw = s.encode()
    return _varint(len(raw)) + raw


def bar_event(bar: BarArrays) -> BarClosed:
    """The validated BarClosed for ``bar`` (what the generic encoder is given on the slow path)."""
    open_time = tuple(_EPOCH + timedelta(milliseconds=t) for t in bar.times.tolist())
    cols = np.asarray(bar.values, dtype=np.float64).T.tolist()
    link: WindowLink = getattr(bar, "link", KEYFRAME)  # optional: a bar without one is a keyframe
    return BarClosed(
        tick_id=bar.tick_id,
        symbol=bar.symbol,
        timeframe=bar.timeframe,
        bar_open_time=open_time[-1],
        open_time=open_time,
        **{c: tuple(v) for c, v in zip(COLUMNS, cols, strict=True)},
        exogenous=tuple(f.to_event() for f in bar.exogenous),
        keyframe_offset=link.keyframe_offset,
        prev_tick_id=link.prev_tick_id,
        window_start=link.window_start,
        window_bars=link.window_bars,
        window_crc=link.window_crc,
    )


@dataclass(frozen=True, slots=True)
class _SampleBar:
    """A minimal :class:`BarArrays` for the encoder's self-check."""

    tick_id: str
    symbol: str
    timeframe: str
    times: npt.NDArray[Any]
    values: npt.NDArray[Any]
    exogenous: tuple[ExogenousArrays, ...] = ()
    link: WindowLink = KEYFRAME


class BarEncoder:
    """Writes a bar exactly as ``serde.encode(bar_event(bar))`` would, straight from its arrays."""

    def __init__(self) -> None:
        self._header = serde.MAGIC + serde.fingerprint_of(BarClosed.SCHEMA_NAME)
        self._time_bytes: dict[int, bytes] = {}
        #: False when the self-check found a difference from the generic encoder (schema changed).
        self.enabled = self._self_check()

    def _times(self, times: npt.NDArray[Any]) -> bytes:
        """All open times as Avro longs; vectorised when every value takes exactly 6 varint bytes.

        Epoch milliseconds from 2001 to 2039 zig-zag to 36..42 bits, i.e. six 7-bit groups, so the
        common case is a fixed-width byte matrix; anything else goes through the scalar encoder.
        """
        z = times.astype(np.uint64) << np.uint64(1)
        if times.size and int(times.min()) >= 0 and int(z.min()) >= 1 << 35 and int(z.max()) < 1 << 42:
            shifts = np.arange(0, 42, 7, dtype=np.uint64)
            groups = ((z[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
            groups[:, :5] |= 0x80
            return groups.tobytes()
        cache = self._time_bytes
        if len(cache) > 1_000_000:
            cache.clear()
        parts = []
        for t in times.tolist():
            b = cache.get(t)
            if b is None:
                b = cache[t] = _varint(t)
            parts.append(b)
        return b"".join(parts)

    def encode(self, bar: BarArrays) -> bytes:
        """The single-object bytes; the layout mirrors ``schemas/avro/BarClosed.avsc`` field by field."""
        times = bar.times
        count = _varint(int(times.shape[0]))
        parts = [
            self._header,
            _string(bar.tick_id),
            _string(bar.symbol),
            _string(bar.timeframe),
            _varint(int(times[-1])),
            count,
            self._times(times),
            b"\x00",
        ]
        cols = np.ascontiguousarray(bar.values.T, dtype="<f8")
        for i in range(5):
            parts += [count, cols[i].tobytes(), b"\x00"]
        if bar.exogenous:
            parts.append(_varint(len(bar.exogenous)))
            for frame in bar.exogenous:
                parts += self._exogenous(frame)
        parts.append(b"\x00")
        link: WindowLink = getattr(bar, "link", KEYFRAME)
        parts += [
            _varint(link.keyframe_offset),
            _string(link.prev_tick_id),
            _varint(link.window_start),
            _varint(link.window_bars),
            _varint(link.window_crc),
        ]
        return b"".join(parts)

    def _longs(self, values: npt.NDArray[Any]) -> list[bytes]:
        if not values.size:
            return [b"\x00"]
        return [_varint(int(values.size)), self._times(values), b"\x00"]

    def _exogenous(self, frame: ExogenousArrays) -> list[bytes]:
        """One ExogenousFrame record: series, the two time arrays, numeric then text columns."""
        n = len(frame)
        count = _varint(n)
        parts = [_string(frame.series), *self._longs(frame.about_ms), *self._longs(frame.published_ms)]
        if frame.numbers:
            parts.append(_varint(len(frame.numbers)))
            for column, values in frame.numbers.items():
                parts.append(_string(column))
                if n:
                    parts += [count, np.ascontiguousarray(values, dtype="<f8").tobytes()]
                parts.append(b"\x00")
        parts.append(b"\x00")
        if frame.texts:
            parts.append(_varint(len(frame.texts)))
            for column, texts in frame.texts.items():
                parts.append(_string(column))
                if n:
                    parts += [count, *(_string(t) for t in texts)]
                parts.append(b"\x00")
        parts.append(b"\x00")
        return parts

    def _self_check(self) -> bool:
        """Byte-compare with the generic encoder on a plain bar and one with every exogenous shape."""
        times = np.array([1_600_000_000_000, 1_600_003_600_000, 1_600_007_200_000], dtype=np.int64)
        values = np.array([[1.5, 2.0, 1.0, 1.25, 0.0], [1.25, 3.0, 1.0, 2.5, 7.0], [2.5, 3.5, 0.5, 2.0, 1e9]])
        sample = _SampleBar("S|2020-09-13T12:26Z", "S", "1h", times, values)
        exo = (
            ExogenousArrays(
                "funding_binance_8h",
                times[:2] - 3_600_000,
                times[:2],
                {"funding_rate": np.array([1e-4, -2.5e-4])},
            ),
            ExogenousArrays(
                "news_headlines",
                times[:1].copy(),
                times[1:2].copy(),
                {"sentiment_polarity": np.array([np.nan])},
                {"title": ["Bitcoin é up"], "url": [""]},
            ),
            ExogenousArrays("exchange_reserves", times[:0], times[:0], {"exchange_reserves": np.empty(0)}),
        )
        with_exo = _SampleBar(sample.tick_id, "S", "1h", times, values, exo)
        link = WindowLink(12345, "S|2020-09-13T11:26Z", int(times[0]) - 7_200_000, 5, 0xFFFFFFFF)
        chained = _SampleBar(sample.tick_id, "S", "1h", times[-1:], values[-1:], exo[:1], link)
        return all(self.encode(p) == serde.encode(bar_event(p)) for p in (sample, with_exo, chained))


#: The process's encoder; its ``enabled`` says whether the fast path passed the self-check.
BAR_ENCODER = BarEncoder()


def encode_bar(bar: BarArrays) -> bytes:
    """Avro single-object bytes of the BarClosed for ``bar`` (fast path when it is proven identical)."""
    if BAR_ENCODER.enabled:
        return BAR_ENCODER.encode(bar)
    return serde.encode(bar_event(bar))
