"""Candles for training: the bundled real dataset or a CSV file.

Both are read by the project's one reader (``common.dataset.read_ohlcv_csv``); a CCXT download
(``common.ccxt_history.download_csv``, the ``download`` command) is written to such a CSV once and
every later step reads that CSV, so results stay reproducible from a file kept next to them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.dataset import CandleCsvError, load_bundled_candles, read_ohlcv_csv

#: The name training's commands catch: the common reader's error (a bad file) and a bad close here.
InputError = CandleCsvError

__all__ = ["InputError", "hours_between", "load_candles"]


def load_candles(path: str | Path | None = None) -> pd.DataFrame:
    """OHLCV frame indexed by UTC open time, oldest first.

    ``None`` (or ``"bundled"``) means the real Bitstamp hourly data shipped with the repo; any other
    value is a ``date,open,high,low,close,volume`` CSV validated like the strategies' ``signals``
    command does (strictly increasing dates, numeric, no NaN).
    """
    bundled = path is None or str(path) == "bundled"
    frame = load_bundled_candles() if bundled else read_ohlcv_csv(path, strict=True)  # type: ignore[arg-type]
    if (frame["close"] <= 0).any():
        raise InputError(f"{path or 'bundled data'}: non-positive close prices")
    return frame


def hours_between(index: pd.DatetimeIndex) -> np.ndarray:
    """Hours elapsed from bar t-1 to bar t (element 0 is 1.0): funding accrues per hour held,
    so a gap in the data (the bundled CSV keeps a few) charges the hours it spans."""
    ns = index.asi8.astype(np.float64)
    out = np.ones(len(index))
    out[1:] = np.diff(ns) / 3.6e12
    return out
