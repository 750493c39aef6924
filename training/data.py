"""Candles for training: the bundled real dataset, a CSV file, or (opt-in) a CCXT download.

Why the download is opt-in and never used by tests: no exchange is reachable from the dev or CI
machines, and results must be reproducible from a file that is kept next to them. A download is
therefore written to a CSV once and every later step reads that CSV.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.dataset import load_bundled_candles
from strategy_consumers.cli import InputError, read_candles

__all__ = ["InputError", "download_ccxt", "hours_between", "load_candles"]


def load_candles(path: str | Path | None = None) -> pd.DataFrame:
    """OHLCV frame indexed by UTC open time, oldest first.

    ``None`` (or ``"bundled"``) means the real Bitstamp hourly data shipped with the repo; any other
    value is a ``date,open,high,low,close,volume`` CSV validated like the strategies' ``signals``
    command does (strictly increasing dates, numeric, no NaN).
    """
    bundled = path is None or str(path) == "bundled"
    frame = load_bundled_candles() if bundled else read_candles(Path(path))  # type: ignore[arg-type]
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


def download_ccxt(
    out: str | Path,
    *,
    exchange: str = "krakenfutures",
    symbol: str = "BTC/USD:USD",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
    client_options: dict[str, Any] | None = None,
) -> Path:
    """Download hourly candles with CCXT and write them as the CSV the other steps read.

    Network access is required (not available in CI); the function is kept small and explicit so
    the only untested code path is the exchange call itself. ``client_options`` go to the CCXT
    constructor (e.g. ``{"urls": {"api": ...}}`` to reach a local stand-in in tests).
    """
    import ccxt  # imported here: only this opt-in path needs it

    client = getattr(ccxt, exchange)({"enableRateLimit": True, **(client_options or {})})
    start = int((since or datetime(2018, 1, 1, tzinfo=UTC)).timestamp() * 1000)
    stop = int((until or datetime.now(UTC)).timestamp() * 1000)
    rows: list[list[float]] = []
    while start < stop:
        batch = client.fetch_ohlcv(symbol, timeframe="1h", since=start, limit=limit)
        if not batch:
            # An empty page is a hole in the venue's history (before the listing, maintenance),
            # not the end of it: step over the page and go on until ``until``.
            start += limit * 3_600_000
            continue
        rows.extend(r for r in batch if r[0] < stop)
        start = max(start + 3_600_000, int(batch[-1][0]) + 3_600_000)
    frame = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"]).drop_duplicates("ts")
    frame["date"] = pd.to_datetime(frame.pop("ts"), unit="ms", utc=True)
    path = Path(out)
    frame[["date", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return path
