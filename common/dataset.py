"""The bundled real BTC/USD hourly dataset (Bitstamp, 2018-05-15 .. 2022-08-20).

It ships gzipped inside the repo so the project runs on a machine without ``../shared``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CSV = REPO_ROOT / "data" / "btcusd_1h_bitstamp.csv.gz"
OHLCV = ["open", "high", "low", "close", "volume"]


def read_ohlcv_csv(path: str | Path) -> pd.DataFrame:
    """Read a ``date,open,high,low,close,volume`` CSV into a frame indexed by UTC open time.

    No cleaning happens here: validation (gaps, bad candles) is the caller's job, so that the
    same reader serves the importer, which must see bad rows to reject them with a reason.
    """
    frame = pd.read_csv(path)
    missing = [c for c in ["date", *OHLCV] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return frame.set_index("date")[OHLCV]


def load_bundled_candles() -> pd.DataFrame:
    """The whole bundled dataset, oldest first, float64 columns, UTC ``DatetimeIndex`` named ``date``."""
    return read_ohlcv_csv(BUNDLED_CSV).astype("float64")
