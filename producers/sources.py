"""Candle sources: the exchange through CCXT, and CSV files (the bundled real dataset).

Both return raw candles; neither filters or fixes anything (see producers.validation).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.ccxt_history import OhlcvExchange, OhlcvHistory, make_exchange
from common.dataset import read_ohlcv_csv
from common.events import to_epoch_ms
from common.logging import get_logger
from common.timeframes import format_timeframe
from producers.candles import RawCandle
from producers.validation import MINUTE_MS

log = get_logger(__name__)


class CcxtSource:
    """Candles from an exchange through CCXT, for the sync: the common pager's rows as RawCandles.

    Paging, backoff and the hole rule live in :class:`common.ccxt_history.OhlcvHistory` (shared with
    training's download); this class only turns rows into candles, ``None`` values into NaN.
    """

    def __init__(
        self,
        exchange: OhlcvExchange,
        *,
        name: str = "ccxt",
        page_limit: int = 1000,
        attempts: int = 6,
        base_wait_s: float = 0.5,
        max_wait_s: float = 30.0,
    ) -> None:
        self.exchange = exchange
        self.name = name
        self.page_limit = page_limit
        self._history = OhlcvHistory(
            exchange, page_limit=page_limit, attempts=attempts, base_wait_s=base_wait_s, max_wait_s=max_wait_s
        )

    @classmethod
    def from_ccxt_id(
        cls, ccxt_id: str = "krakenfutures", *, attempts: int = 6, timeout_ms: int = 10_000, **options: Any
    ) -> CcxtSource:
        """A real ccxt exchange with its built-in rate limiter on (public endpoints: no keys needed)."""
        return cls(make_exchange(ccxt_id, timeout_ms=timeout_ms, **options), name=ccxt_id, attempts=attempts)

    def fetch(
        self, symbol: str, timeframe: str, since: datetime, until: datetime, limit: int | None = None
    ) -> list[RawCandle]:
        """Pages forward from ``since`` until a page reaches ``until``; rows are not filtered here."""
        rows = self._history.rows(symbol, timeframe, to_epoch_ms(since), to_epoch_ms(until), max_rows=limit)
        out = [RawCandle(int(r[0]), *(float("nan") if x is None else float(x) for x in r[1:6])) for r in rows]
        return out if limit is None else out[:limit]


class CsvSource:
    """Candles from a ``date,open,high,low,close,volume`` file, read once and served by range."""

    def __init__(self, path: str | Path, *, name: str = "csv") -> None:
        self.path = Path(path)
        #: Rows that could not become candles at all (no readable date): (line, reason), logged.
        self.unreadable: list[tuple[int, str]] = []
        frame = read_ohlcv_csv(path, on_bad_row=self._unreadable)
        self.name = name
        self._times = frame.index.as_unit("ms").asi8.astype(np.int64)
        self._values = frame.to_numpy(dtype=np.float64)

    def _unreadable(self, line: int, reason: str) -> None:
        self.unreadable.append((line, reason))
        log.warning("csv_row_rejected", path=str(self.path), line=line, reason=reason)

    @property
    def timeframe(self) -> str:
        """The file's bar length (most common spacing), so an import cannot mislabel hourly bars as 1m."""
        diffs = np.diff(np.sort(self._times))
        diffs = diffs[diffs > 0]
        if diffs.size == 0:
            raise ValueError(f"{self.path}: cannot infer a timeframe from fewer than two distinct rows")
        values, counts = np.unique(diffs, return_counts=True)
        return format_timeframe(int(values[np.argmax(counts)] // MINUTE_MS))

    @property
    def first_time(self) -> int:
        return int(self._times.min())

    @property
    def last_time(self) -> int:
        return int(self._times.max())

    def fetch(
        self, symbol: str, timeframe: str, since: datetime, until: datetime, limit: int | None = None
    ) -> list[RawCandle]:
        if timeframe != self.timeframe:
            raise ValueError(f"{self.path} holds {self.timeframe} candles, not {timeframe}")
        lo, hi = to_epoch_ms(since), to_epoch_ms(until)
        mask = (self._times >= lo) & (self._times < hi)
        rows = zip(self._times[mask].tolist(), self._values[mask].tolist(), strict=True)
        out = [RawCandle(t, *v) for t, v in rows]
        return out if limit is None else out[:limit]
