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


def read_ohlcv_csv(path: str | Path, *, on_bad_row: Callable[[int, str], None] | None = None) -> pd.DataFrame:
    """Read a ``date,open,high,low,close,volume`` CSV into a frame indexed by UTC open time.

    No cleaning happens here: validation (gaps, bad candles) is the caller's job, so that the
    same reader serves the importer, which must see bad rows to reject them with a reason. Values
    that are not numbers read as NaN (the importer rejects those candles as non-finite). A row
    whose date cannot be read cannot become a candle at all: with ``on_bad_row`` it is reported
    as (file line number, reason) and left out; without, the read fails naming the line.
    """
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path, dtype={"date": str}, keep_default_na=False, na_values=[""])
    missing = [c for c in ["date", *OHLCV] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    for c in OHLCV:  # a column with a non-number in it was read as text: those cells become NaN
        if frame[c].dtype == object:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
    dates = pd.to_datetime(frame["date"], utc=True, errors="coerce", format="ISO8601")
    unreadable = dates.isna().to_numpy()
    for i in np.flatnonzero(unreadable):
        reason = f"unreadable date {frame['date'].iloc[i]!r}"
        if on_bad_row is None:
            raise ValueError(f"{path}: line {i + 2}: {reason}")
        on_bad_row(int(i) + 2, reason)  # +2: the header is line 1
    frame = frame.loc[~unreadable]
    frame.index = pd.DatetimeIndex(dates[~unreadable], name="date")
    return frame[OHLCV].astype("float64")


def load_bundled_candles() -> pd.DataFrame:
    """The whole bundled dataset, oldest first, float64 columns, UTC ``DatetimeIndex`` named ``date``."""
    return read_ohlcv_csv(BUNDLED_CSV).astype("float64")
