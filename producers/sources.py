"""Candle sources: the exchange through CCXT, and CSV files (the bundled real dataset).

Both return raw candles; neither filters or fixes anything (see producers.validation).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import ccxt
import numpy as np
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from common.dataset import read_ohlcv_csv
from common.events import to_epoch_ms
from common.logging import get_logger
from common.timeframes import format_timeframe, parse_timeframe
from producers.candles import RawCandle
from producers.validation import MINUTE_MS

log = get_logger(__name__)


class OhlcvExchange(Protocol):
    """The part of a ccxt exchange this module uses (so tests can hand in a local stand-in)."""

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]: ...


class _StdlibLogAdapter:
    """tenacity's before_sleep_log wants a stdlib-style ``log(level, msg)``; route it to structlog."""

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        log.warning("exchange_retry", detail=msg % args if args else msg)


class CcxtSource:
    """Paginated OHLCV download with backoff on rate limits and network errors.

    CCXT's own throttle (enableRateLimit) spaces requests; tenacity handles what still goes wrong
    (429s, timeouts, resets) with exponential backoff, so a flaky minute never loses a sync, and a
    persistent failure surfaces after ``attempts`` tries instead of hanging the tick forever.
    """

    def __init__(
        self, exchange: OhlcvExchange, *, name: str = "ccxt", page_limit: int = 1000, attempts: int = 6,
        base_wait_s: float = 0.5, max_wait_s: float = 30.0,
    ) -> None:
        self.exchange = exchange
        self.name = name
        self.page_limit = page_limit
        self._fetch_page = retry(
            retry=retry_if_exception_type((ccxt.RateLimitExceeded, ccxt.NetworkError)),
            wait=wait_exponential(multiplier=base_wait_s, max=max_wait_s),
            stop=stop_after_attempt(attempts),
            before_sleep=before_sleep_log(_StdlibLogAdapter(), 30),  # type: ignore[arg-type]
            reraise=True,
        )(self._fetch_page_once)

    @classmethod
    def from_ccxt_id(
        cls, ccxt_id: str = "krakenfutures", *, attempts: int = 6, timeout_ms: int = 10_000, **options: Any
    ) -> CcxtSource:
        """A real ccxt exchange with its built-in rate limiter on (public endpoints: no keys needed)."""
        exchange = getattr(ccxt, ccxt_id)({"enableRateLimit": True, "timeout": timeout_ms, **options})
        return cls(exchange, name=ccxt_id, attempts=attempts)

    def _fetch_page_once(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[list[Any]]:
        return self.exchange.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=limit)

    def fetch(
        self, symbol: str, timeframe: str, since: datetime, until: datetime, limit: int | None = None
    ) -> list[RawCandle]:
        """Pages forward from ``since`` until a page reaches ``until``; rows are not filtered here."""
        tf_ms = parse_timeframe(timeframe) * MINUTE_MS
        since_ms, until_ms = to_epoch_ms(since), to_epoch_ms(until)
        out: list[RawCandle] = []
        cursor = since_ms
        while cursor < until_ms and (limit is None or len(out) < limit):
            page = self._fetch_page(symbol, timeframe, cursor, self.page_limit)
            if not page:
                break
            last = cursor - 1
            for row in page:  # kept verbatim, even out of range: validation judges and records them
                t = int(row[0])
                last = max(last, t)
                out.append(RawCandle(t, *(float("nan") if x is None else float(x) for x in row[1:6])))
            if last < cursor:  # the exchange returned nothing new: stop rather than loop forever
                break
            cursor = last + tf_ms
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
