"""The bundled real BTC/USD hourly dataset (Bitstamp, 2018-05-15 .. 2022-08-20).

It ships gzipped inside the repo so the project runs on a machine without ``../shared``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# numpy and pandas are imported where a file is read: CLIs import this module for BUNDLED_CSV, a
# path shown in their `--help`, which must not wait for pandas.
REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CSV = REPO_ROOT / "data" / "btcusd_1h_bitstamp.csv.gz"
OHLCV = ["open", "high", "low", "close", "volume"]


class CandleCsvError(ValueError):
    """A candle CSV that breaks the format: the message names the file, and the line where there is one."""


def read_ohlcv_csv(
    path: str | Path, *, on_bad_row: Callable[[int, str], None] | None = None, strict: bool = False
) -> pd.DataFrame:
    """Read a ``date,open,high,low,close,volume`` CSV into a frame indexed by UTC open time.

    The project's one candle CSV reader (the importer, the replay, training and the strategies'
    ``signals`` command all come here), with two policies, because its callers need two:

    * default (the importer, the bundled data): no cleaning, since validation (gaps, bad candles)
      is the importer's job and it must see bad rows to reject them with a reason. Values that are
      not numbers read as NaN (the importer rejects those candles as non-finite). A row whose date
      cannot be read cannot become a candle at all: with ``on_bad_row`` it is reported as (file
      line number, reason) and left out; without, the read fails naming the line.
    * ``strict=True`` (``signals``, training on a user's file): the file is the whole input of a
      computation, so any row that is not a clean candle is refused rather than dropped: at least
      one row, every value a finite number, dates strictly increasing (oldest first, no duplicates).

    Dates are ISO 8601 (what every writer in the project produces); a date without an offset is
    taken as UTC. Every refusal is a :class:`CandleCsvError`, including a file that cannot be read.
    """
    import numpy as np
    import pandas as pd

    if strict and on_bad_row is not None:
        raise TypeError("strict reading refuses bad rows; on_bad_row is for the lenient policy")
    try:
        frame = pd.read_csv(path, dtype={"date": str}, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CandleCsvError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in ["date", *OHLCV] if c not in frame.columns]
    if missing:
        raise CandleCsvError(f"{path}: missing columns {missing}")
    if strict and frame.empty:
        raise CandleCsvError(f"{path}: no rows")
    raw = frame[OHLCV].copy() if strict else None  # the cells as written, for the error message
    for c in OHLCV:  # a column with a non-number in it was read as text: those cells become NaN
        if frame[c].dtype == object:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    dates = pd.to_datetime(frame["date"], utc=True, errors="coerce", format="ISO8601")
    unreadable = dates.isna().to_numpy()
    for i in np.flatnonzero(unreadable):
        reason = f"unreadable date {frame['date'].iloc[i]!r}"
        if on_bad_row is None:
            raise CandleCsvError(f"{path}: line {i + 2}: {reason}")
        on_bad_row(int(i) + 2, reason)  # +2: the header is line 1
    frame = frame.loc[~unreadable]
    frame.index = pd.DatetimeIndex(dates[~unreadable], name="date")
    out = frame[OHLCV].astype("float64")
    if raw is not None:  # strict: no row was dropped above, so positions still match the file
        for c in OHLCV:
            bad = np.flatnonzero(~np.isfinite(out[c].to_numpy()))
            if len(bad):
                row = int(bad[0])
                cell = raw[c].iloc[row]
                raise CandleCsvError(f"{path}: column {c!r} is not numeric at line {row + 2}: {cell!r}")
        if not out.index.is_monotonic_increasing or out.index.has_duplicates:
            raise CandleCsvError(f"{path}: dates must be strictly increasing (oldest first, no duplicates)")
    return out


def load_bundled_candles() -> pd.DataFrame:
    """The whole bundled dataset, oldest first, float64 columns, UTC ``DatetimeIndex`` named ``date``."""
    return read_ohlcv_csv(BUNDLED_CSV).astype("float64")


def resample_candles(candles: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Hourly candles -> complete ``timeframe`` bars, exactly as the tick emitter builds them.

    Bins are aligned to the epoch (4h at 00/04/.../20 UTC, 1d at 00:00 UTC) and a bin missing any
    hour is left out, never filled (``common.timeframes.resample``): the live windows of a 4h or
    1d strategy are cut from the same bins.
    Here, next to the candle reader, because the training engine and the ops report both cut
    strategy bars from hourly candles and must cut the same ones.
    """
    import numpy as np
    import pandas as pd

    from common.timeframes import MINUTE_MS, parse_timeframe, resample

    minutes = parse_timeframe(timeframe)
    if minutes == 60:
        return candles
    if minutes % 60:
        raise ValueError(f"timeframe {timeframe} is not a whole number of hours")
    idx = pd.DatetimeIndex(candles.index)
    times = idx.as_unit("ms").asi8.astype(np.int64)
    values = candles[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    tf_ms = minutes * MINUTE_MS
    start = int(times[0] // tf_ms * tf_ms) if len(times) else 0
    rt, rv = resample(times, values, 60, minutes, start)
    index = pd.DatetimeIndex(pd.to_datetime(rt, unit="ms", utc=True), name="date")
    return pd.DataFrame(rv, index=index, columns=["open", "high", "low", "close", "volume"])
