"""Load the shared exogenous CSV files into validated, point-in-time frames.

Every row is checked and either taken as it is or refused with a reason (logged and counted),
never repaired: a filled or corrected value would give a backtest an input that nobody could have
seen. Each frame carries two times per row, ``about_ts`` (what the value describes) and
``published_at`` (when it became known, from the catalog's publication rule); strategies must only
read rows through ``visible_at`` / ``asof``, which cut on ``published_at``.

Frame layout (one per series): ``about_ts``, ``published_at`` (both ``datetime64[ns, UTC]``), then
the series' value columns in catalog order: float64 for numbers (NaN only in optional columns), str
for text ("" when the source cell was empty). Sorted by (published_at, about_ts), file order kept
among ties, with a fresh RangeIndex.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.exogenous.catalog import TIME_SERIES, Column, ColumnKind, Frequency, Series, get_series
from common.logging import get_logger

log = get_logger(__name__)

ABOUT: Final = "about_ts"
PUBLISHED: Final = "published_at"
#: What ``asof`` measures a value's age from.
AgeFrom: TypeAlias = Literal["published_at", "about_ts"]
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


class Reason(StrEnum):
    """Why a row was refused (the values appear verbatim in logs and in the import summary)."""

    #: ``ts`` is missing or not ``YYYY-MM-DDTHH:MM:SSZ``.
    BAD_TIMESTAMP = "bad_timestamp"
    #: A number that does not parse, or a row with the wrong number of fields.
    BAD_FORMAT = "bad_format"
    #: A required value is empty, or the row has no value at all.
    EMPTY_VALUE = "empty_value"
    #: ``nan`` / ``inf`` written as a value.
    NON_FINITE = "non_finite"
    #: A unit-like field (instrument, funding interval, label) outside what the catalog knows.
    UNKNOWN_UNIT = "unknown_unit"
    #: A number outside the catalog's bounds for that column (e.g. Fear & Greed above 100).
    OUT_OF_RANGE = "out_of_range"
    #: ``ts`` not on the series' grid (a daily row not at 00:00, an hourly row at :30).
    OFF_GRID = "off_grid"
    #: ``ts`` after the load time: a value from the future cannot be known.
    FUTURE = "future"
    #: ``ts`` earlier than an earlier row's (files are sorted ascending).
    OUT_OF_ORDER = "out_of_order"
    #: The same row (same ``ts``, same values) again.
    DUPLICATE = "duplicate"
    #: Same ``ts`` as another row with other values: every row of that ``ts`` is refused (we cannot
    #: tell which one the source meant).
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused row: 1-based line number in the file (header = line 1), reason, raw ``ts``."""

    line: int
    reason: Reason
    ts: str
    detail: str = ""


@dataclass(frozen=True)
class LoadResult:
    """A validated series: the frame of taken rows and every refusal."""

    series: Series
    frame: pd.DataFrame
    rows_read: int
    rejections: tuple[Rejection, ...]

    @property
    def taken(self) -> int:
        return len(self.frame)

    @property
    def rejected(self) -> dict[str, int]:
        """Count of refused rows per reason (only reasons that occurred)."""
        return dict(Counter(r.reason.value for r in self.rejections))


class SeriesFileError(ValueError):
    """The file as a whole cannot be read as its series (missing, wrong header): nothing is taken."""


def series_path(directory: Path, series: Series) -> Path:
    return Path(directory) / series.file


def load_series(directory: Path, name: str, *, now: datetime | None = None) -> LoadResult:
    """Read and validate one series' file from ``directory``.

    ``now`` is the load time (default: the wall clock); rows about a later time are refused as
    ``future``. Raises ``SeriesFileError`` when the file is missing or its header does not match the
    catalog (an unknown or missing column means the columns' units cannot be trusted).
    """
    series = get_series(name)
    if series.is_static:
        raise SeriesFileError(f"{name} is static (no time axis): read it with load_static()")
    path = series_path(directory, series)
    raw = _read_text_table(path, series, ("ts", *series.value_columns))
    return parse_rows(series, raw, now=now, origin=str(path))


def parse_rows(
    series: Series, raw: pd.DataFrame, *, now: datetime | None = None, origin: str = "", first_line: int = 2
) -> LoadResult:
    """Validate rows given as text (columns ``ts`` + the series' columns, every cell a str).

    The same rules serve the files and the live pollers, so a value is judged alike wherever it
    came from. ``first_line`` numbers the rows in rejections (2 = the line after a CSV header).
    Row rules are checked vectorized; only the order-dependent ones (out of order, duplicates) walk
    the rows, on integers.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    now_ns = pd.Timestamp(now).as_unit("ns").value
    n = len(raw)
    columns = series.columns
    ts_text = pd.Series(raw["ts"].to_numpy(dtype=object), dtype=object)
    cells = {
        c.name: pd.Series(raw[c.name].to_numpy(dtype=object), dtype=object).fillna("").astype(str)
        for c in columns
    }
    ts_ok, ts_ns = _parse_ts(ts_text.tolist())
    parsed = pd.Series(
        pd.DatetimeIndex(np.where(ts_ok, ts_ns, np.iinfo(np.int64).min).astype("datetime64[ns]")).tz_localize(
            UTC
        )
    )
    off_grid = ts_ok & ~_on_grid(series.frequency, parsed)
    future = ts_ok & ~off_grid & (ts_ns > now_ns)
    bad_values = _value_problems(columns, cells, n)

    reasons: dict[int, tuple[Reason, str]] = {}
    for i in np.flatnonzero(~ts_ok):
        reasons[int(i)] = (Reason.BAD_TIMESTAMP, repr(ts_text[i]))
    for i in np.flatnonzero(off_grid):
        reasons[int(i)] = (Reason.OFF_GRID, f"not on the {series.frequency.value} grid")
    for i in np.flatnonzero(future):
        reasons[int(i)] = (Reason.FUTURE, f"after the load time {now.isoformat()}")
    for i in np.flatnonzero(bad_values & ts_ok & ~off_grid & ~future):
        problem = _check_values(columns, [cells[c.name].iat[i] for c in columns])
        assert problem is not None, "vectorized and row checks disagree"
        reasons[int(i)] = problem

    # Order-dependent rules over the rows that passed the rest, in file order.
    row_keys: list[object] = (
        list(zip(ts_ns.tolist(), *(cells[c.name].tolist() for c in columns), strict=True))
        if series.is_event
        else ts_ns.tolist()
    )
    row_values = list(zip(*(cells[c.name].tolist() for c in columns), strict=True)) if n else []
    kept: list[int] = []
    seen: dict[object, int] = {}
    conflicted: set[object] = set()
    withdrawn: set[int] = set()
    latest = np.iinfo(np.int64).min
    for i in range(n):
        if i in reasons:
            continue
        t = int(ts_ns[i])
        if t < latest:
            reasons[i] = (Reason.OUT_OF_ORDER, "earlier than a previous row")
            continue
        key = row_keys[i]
        if key in conflicted:
            reasons[i] = (Reason.CONFLICTING_DUPLICATE, "same ts, other values")
        elif key in seen:
            first = seen[key]
            if row_values[first] == row_values[i]:
                reasons[i] = (Reason.DUPLICATE, "same ts and values as an earlier row")
            else:
                conflicted.add(key)
                withdrawn.add(first)
                reasons[first] = reasons[i] = (Reason.CONFLICTING_DUPLICATE, "same ts, other values")
        else:
            latest = t
            seen[key] = i
            kept.append(i)
    take = np.asarray([i for i in kept if i not in withdrawn], dtype=np.int64)

    about = pd.DatetimeIndex(ts_ns[take].astype("datetime64[ns]")).tz_localize(UTC)
    data: dict[str, object] = {ABOUT: about, PUBLISHED: series.publication.published_at(about)}
    for c in columns:
        col = cells[c.name].to_numpy(dtype=object)[take]
        if c.kind is ColumnKind.NUMBER:
            data[c.name] = np.where(col == "", "nan", col).astype(np.float64)
        else:
            data[c.name] = col
    frame = pd.DataFrame(data).sort_values([PUBLISHED, ABOUT], kind="stable", ignore_index=True)
    rejections = tuple(
        Rejection(first_line + i, reason, str(ts_text[i]), detail)
        for i, (reason, detail) in sorted(reasons.items())
    )
    for r in rejections:
        log.warning(
            "exogenous_row_rejected",
            series=series.name,
            origin=origin,
            line=r.line,
            reason=r.reason.value,
            ts=r.ts,
            detail=r.detail,
        )
    log.info(
        "exogenous_series_loaded",
        series=series.name,
        origin=origin,
        rows=n,
        taken=len(frame),
        rejected=len(rejections),
    )
    return LoadResult(series, frame, n, rejections)


def _parse_ts(texts: list[object]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(valid mask, int64 ns) for ``YYYY-MM-DDTHH:MM:SSZ`` texts; numpy parses the ISO form in C."""
    ok = np.fromiter(
        (isinstance(v, str) and _TS_RE.match(v) is not None for v in texts), dtype=bool, count=len(texts)
    )
    body = [v[:-1] if good else "NaT" for v, good in zip(texts, ok, strict=True)]  # type: ignore[index]
    try:
        stamps = np.array(body, dtype="datetime64[s]")
    except ValueError:  # an impossible date (month 13, Feb 30): find it row by row
        stamps = np.array([_one_ts(b) for b in body], dtype="datetime64[s]")
    ok &= ~np.isnat(stamps)
    return ok, np.where(ok, stamps.astype("datetime64[ns]").view(np.int64), 0)


def _one_ts(text: str) -> np.datetime64:
    try:
        return np.datetime64(text, "s")
    except ValueError:
        return np.datetime64("NaT", "s")


def _on_grid(frequency: Frequency, parsed: pd.Series) -> npt.NDArray[Any]:
    """Whether each (parsed) ``ts`` sits on the series' time grid; NaT counts as on it."""
    if frequency in (Frequency.HOURLY, Frequency.EIGHT_HOURLY):
        ok = parsed.dt.floor("h") == parsed
    elif frequency is Frequency.DAILY:
        ok = parsed.dt.floor("D") == parsed
    elif frequency is Frequency.MONTHLY:
        ok = (parsed.dt.floor("D") == parsed) & (parsed.dt.day == 1)
    else:
        return np.ones(len(parsed), dtype=bool)
    out: npt.NDArray[Any] = (ok | parsed.isna()).to_numpy(dtype=bool)
    return out


def _value_problems(columns: Sequence[Column], cells: dict[str, pd.Series], n: int) -> npt.NDArray[Any]:
    """Rows that break a value rule (the same rules as ``_check_values``, vectorized)."""
    bad = np.zeros(n, dtype=bool)
    present = np.zeros(n, dtype=np.int64)
    for c in columns:
        text = cells[c.name]
        empty = (text == "").to_numpy(dtype=bool)
        present += ~empty
        if c.required:
            bad |= empty
        if c.allowed is not None:
            bad |= ~empty & ~text.isin(c.allowed).to_numpy(dtype=bool)
        if c.kind is ColumnKind.NUMBER:
            match = _NUMBER_RE.match
            number = np.fromiter((match(v) is not None for v in text.tolist()), dtype=bool, count=n)
            bad |= ~empty & ~number
            x = np.full(n, np.nan)
            x[number] = text.to_numpy(dtype=object)[number].astype(np.float64)
            bad |= number & ~np.isfinite(x)
            with np.errstate(invalid="ignore"):
                if c.minimum is not None:
                    bad |= number & (x < c.minimum)
                if c.maximum is not None:
                    bad |= number & (x > c.maximum)
    bad |= present == 0
    return bad


def _check_values(columns: Sequence[Column], values: Sequence[str]) -> tuple[Reason, str] | None:
    """The first rule the row's values break, or None."""
    present = 0
    for c, v in zip(columns, values, strict=True):
        if v == "":
            if c.required:
                return Reason.EMPTY_VALUE, f"{c.name} is empty"
            continue
        present += 1
        if c.allowed is not None and v not in c.allowed:
            return Reason.UNKNOWN_UNIT, f"{c.name}={v!r} (known: {', '.join(sorted(c.allowed))})"
        if c.kind is ColumnKind.TEXT:
            continue
        if v.strip().lower() in _NON_FINITE:
            return Reason.NON_FINITE, f"{c.name}={v!r}"
        if not _NUMBER_RE.match(v):
            return Reason.BAD_FORMAT, f"{c.name}={v!r} is not a number"
        x = float(v)
        if not math.isfinite(x):
            return Reason.NON_FINITE, f"{c.name}={v!r}"
        if (c.minimum is not None and x < c.minimum) or (c.maximum is not None and x > c.maximum):
            return Reason.OUT_OF_RANGE, f"{c.name}={v} outside [{c.minimum}, {c.maximum}]"
    if present == 0:
        return Reason.EMPTY_VALUE, "no value in the row"
    return None


def _read_text_table(path: Path, series: Series, expected: Sequence[str]) -> pd.DataFrame:
    """The file as text cells (no float round-trip, empty stays ""), header checked against the catalog."""
    if not path.is_file():
        raise SeriesFileError(f"{series.name}: file not found: {path}")
    try:
        raw = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8",
            on_bad_lines="error",
            engine="c",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SeriesFileError(f"{series.name}: {path.name} is not a readable CSV: {exc}") from None
    header = list(raw.columns)
    if header != list(expected):
        unknown = [c for c in header if c not in expected]
        missing = [c for c in expected if c not in header]
        raise SeriesFileError(
            f"{series.name}: {path.name} header {header} does not match the catalog {list(expected)}"
            + (f"; unknown column(s) {unknown}" if unknown else "")
            + (f"; missing column(s) {missing}" if missing else "")
        )
    return raw


def load_dir(
    directory: Path, names: Iterable[str] | None = None, *, now: datetime | None = None
) -> dict[str, pd.DataFrame]:
    """Frames of several series (default: every time series in the catalog), keyed by name.

    Raises ``SeriesFileError`` for the first file that cannot be read at all; refused rows are
    logged and left out (use ``load_series`` to see the counts).
    """
    chosen = list(TIME_SERIES if names is None else names)
    return {name: load_series(directory, name, now=now).frame for name in chosen}


def load_static(directory: Path, name: str) -> pd.DataFrame:
    """A static table (the lexicon): its columns as in the catalog, numbers as float, refusing bad rows."""
    series = get_series(name)
    if not series.is_static:
        raise SeriesFileError(f"{name} is a time series: read it with load_series()")
    path = series_path(directory, series)
    raw = _read_text_table(path, series, series.value_columns)
    keep: list[int] = []
    for i, values in enumerate(raw.itertuples(index=False, name=None)):
        problem = _check_values(series.columns, [str(v) for v in values])
        if problem is None:
            keep.append(i)
        else:
            log.warning(
                "exogenous_row_rejected",
                series=name,
                origin=str(path),
                line=i + 2,
                reason=problem[0].value,
                detail=problem[1],
            )
    frame = raw.iloc[keep].reset_index(drop=True)
    for c in series.columns:
        if c.kind is ColumnKind.NUMBER:
            frame[c.name] = frame[c.name].astype(np.float64)
    return frame


# ------------------------------------------------------------------------------ point-in-time reads

#: Instants ``asof`` accepts: tz-aware datetimes/Timestamps (one or many) or numpy datetime64 (UTC).
TimesLike: TypeAlias = (
    pd.DatetimeIndex | pd.Series | npt.NDArray[Any] | Sequence[datetime] | datetime | pd.Timestamp
)


def _times_ns(times: TimesLike) -> npt.NDArray[Any]:
    """Instants as int64 ns since the epoch (UTC). Naive inputs are refused: whose clock would it be?"""
    if isinstance(times, datetime):  # pd.Timestamp included
        stamp = pd.Timestamp(times)
        if stamp.tz is None:
            raise ValueError("times must be tz-aware (UTC)")
        return np.array([stamp.as_unit("ns").value], dtype=np.int64)
    if isinstance(times, np.ndarray) and np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[ns]").view(np.int64)  # numpy datetime64 has no zone: UTC
    index = times if isinstance(times, pd.DatetimeIndex) else pd.DatetimeIndex(times)
    if index.tz is None:
        raise ValueError("times must be tz-aware (UTC)")
    return np.asarray(index.as_unit("ns").asi8)  # asi8 is UTC whatever the zone


def _column_ns(frame: pd.DataFrame, column: str) -> npt.NDArray[Any]:
    """A tz-aware column as int64 ns since the epoch, without a copy when it is already ns."""
    values = frame[column].array
    if getattr(values, "unit", "ns") != "ns":
        values = values.as_unit("ns")
    return np.asarray(values.asi8)


def visible_at(frame: pd.DataFrame, t: datetime | pd.Timestamp) -> pd.DataFrame:
    """Rows published at or before ``t`` (a prefix of the frame, which is sorted by publication)."""
    k = int(np.searchsorted(_column_ns(frame, PUBLISHED), _times_ns(t)[0], side="right"))
    return frame.iloc[:k]


def asof_index(frame: pd.DataFrame, times: TimesLike) -> npt.NDArray[Any]:
    """Per time, the position of the latest row published at or before it (-1: none yet)."""
    return np.searchsorted(_column_ns(frame, PUBLISHED), _times_ns(times), side="right") - 1


def asof(
    frame: pd.DataFrame,
    times: TimesLike,
    max_age: timedelta | pd.Timedelta | None = None,
    columns: Sequence[str] | None = None,
    age_from: AgeFrom = "published_at",
) -> pd.DataFrame:
    """The latest published row at each time; NaN (NaT, "" for text) where none or too old.

    Age is ``t - published_at`` by default (how long ago the value arrived); pass
    ``age_from="about_ts"`` to measure from what the value is about. ``max_age=None`` never expires
    a value: strategies should declare a limit instead (forward-filling forever is a guess).
    Returns a frame indexed by the times (UTC) with ``about_ts``, ``published_at`` and the columns.
    """
    t_ns = _times_ns(times)
    pos = _positions(frame, t_ns, max_age, age_from)
    wanted = [
        ABOUT,
        PUBLISHED,
        *([c for c in frame.columns if c not in (ABOUT, PUBLISHED)] if columns is None else columns),
    ]
    base = frame[wanted]
    if not isinstance(base.index, pd.RangeIndex) or base.index.start != 0 or base.index.step != 1:
        base = base.reset_index(drop=True)
    picked = base.reindex(pos)  # label -1 is absent: an all-missing row
    for name in wanted:
        if picked[name].dtype == object:
            picked[name] = picked[name].fillna("")
    picked.index = pd.DatetimeIndex(t_ns.astype("datetime64[ns]")).tz_localize(UTC)
    return picked


def _positions(
    frame: pd.DataFrame, t_ns: npt.NDArray[Any], max_age: timedelta | pd.Timedelta | None, age_from: str
) -> npt.NDArray[Any]:
    """Row position of the value to use at each time, -1 where none is published or it is too old."""
    if len(frame) == 0:
        return np.full(len(t_ns), -1, dtype=np.int64)
    pos = np.searchsorted(_column_ns(frame, PUBLISHED), t_ns, side="right") - 1
    if max_age is not None:
        ages = t_ns - _column_ns(frame, age_from)[np.maximum(pos, 0)]
        pos = np.where(ages <= pd.Timedelta(max_age).value, pos, -1)
    return pos.astype(np.int64)


def asof_values(
    frame: pd.DataFrame,
    times: TimesLike,
    column: str,
    max_age: timedelta | pd.Timedelta | None = None,
    age_from: AgeFrom = "published_at",
) -> npt.NDArray[Any]:
    """One numeric column at each time as float64 (NaN where none or too old): the per-bar fast path."""
    pos = _positions(frame, _times_ns(times), max_age, age_from)
    out = np.full(len(pos), np.nan)
    ok = pos >= 0
    out[ok] = frame[column].to_numpy(dtype=np.float64)[pos[ok]]
    return out


class PointInTime:
    """A frame's arrays cached once, for many point-in-time reads (the live per-bar path).

    ``asof``/``asof_values`` above go through pandas on every call (~0.1-1.5 ms); a strategy that
    reads several series each bar builds one of these per series instead and pays microseconds.
    The frame must not change afterwards (frames from ``load_series`` are never mutated here).
    """

    __slots__ = ("_about", "_columns", "_published", "frame")

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._published = _column_ns(frame, PUBLISHED).copy()
        self._about = _column_ns(frame, ABOUT).copy()
        self._columns: dict[str, npt.NDArray[Any]] = {
            c: frame[c].to_numpy(dtype=np.float64)
            for c in frame.columns
            if c not in (ABOUT, PUBLISHED) and frame[c].dtype.kind == "f"
        }

    def __len__(self) -> int:
        return len(self._published)

    def positions(
        self,
        times: TimesLike,
        max_age: timedelta | pd.Timedelta | None = None,
        age_from: AgeFrom = "published_at",
    ) -> npt.NDArray[Any]:
        """Row position used at each time; -1 where nothing is published yet or it is too old."""
        t_ns = _times_ns(times)
        if len(self._published) == 0:
            return np.full(len(t_ns), -1, dtype=np.int64)
        pos = np.searchsorted(self._published, t_ns, side="right") - 1
        if max_age is not None:
            base = self._published if age_from == PUBLISHED else self._about
            ages = t_ns - base[np.maximum(pos, 0)]
            pos = np.where(ages <= pd.Timedelta(max_age).value, pos, -1)
        return pos.astype(np.int64)

    def values(
        self,
        times: TimesLike,
        column: str,
        max_age: timedelta | pd.Timedelta | None = None,
        age_from: AgeFrom = "published_at",
    ) -> npt.NDArray[Any]:
        """A numeric column at each time, NaN where none or too old (same answer as ``asof_values``)."""
        pos = self.positions(times, max_age, age_from)
        out = np.full(len(pos), np.nan)
        ok = pos >= 0
        out[ok] = self._columns[column][pos[ok]]
        return out

    def count_visible(self, t: datetime | pd.Timestamp) -> int:
        """How many rows are published at or before ``t`` (``frame.iloc[:n]`` are those rows)."""
        return int(np.searchsorted(self._published, _times_ns(t)[0], side="right"))

    def count_published_between(self, start: TimesLike, end: TimesLike) -> npt.NDArray[Any]:
        """Rows published in ``(start, end]`` per pair of times (e.g. news items per bar)."""
        lo = np.searchsorted(self._published, _times_ns(start), side="right")
        hi = np.searchsorted(self._published, _times_ns(end), side="right")
        return (hi - lo).astype(np.int64)
