"""Base candles kept in memory between ticks, topped up with only what is new.

A live tick needs up to MAX_LOOKBACK_HOURS of MIN_TIMEFRAME candles (43,200 rows at 1m/720 h;
far more with the registry's 4,200 h). Reading them all from Postgres every minute costs tens of
milliseconds; reading only the candles after the last cached one costs one small query. Candles
are insert-only (never rewritten: producers refuse a different version of a stored candle), so
appending is exact; a periodic full reload also picks up anything written into the past (a CSV
import filling an old gap).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import numpy as np

from common.events import from_epoch_ms, to_epoch_ms
from tick_emitter.core import BaseCandles

Loader = Callable[[datetime, datetime], tuple[np.ndarray, np.ndarray]]


class BaseCandleCache:
    def __init__(self, loader: Loader, timeframe_minutes: int, *, full_reload_s: float = 3600.0) -> None:
        self._load = loader
        self._tf_ms = timeframe_minutes * 60_000
        self._minutes = timeframe_minutes
        self._full_reload_s = full_reload_s
        self._base: BaseCandles | None = None
        self._from_ms = 0
        self._to_ms = 0
        self._loaded_at = 0.0

    def get(self, start: datetime, end: datetime) -> BaseCandles:
        """Candles in ``[start, end)``, as one full query would return them."""
        start_ms, end_ms = to_epoch_ms(start), to_epoch_ms(end)
        base = self._base
        stale = time.monotonic() - self._loaded_at > self._full_reload_s
        if base is None or stale or start_ms < self._from_ms or end_ms < self._to_ms:
            times, values = self._load(start, end)
            self._base = BaseCandles(times, values, self._minutes)
            self._from_ms, self._to_ms, self._loaded_at = start_ms, end_ms, time.monotonic()
            return self._base
        if end_ms > self._to_ms:
            new_t, new_v = self._load(from_epoch_ms(self._to_ms), end)
            if new_t.size:
                base = BaseCandles(
                    np.concatenate([base.times, new_t]), np.concatenate([base.values, new_v]), self._minutes
                )
            self._to_ms = end_ms
        keep = int(np.searchsorted(base.times, start_ms, side="left"))
        if keep:
            base = BaseCandles(base.times[keep:], base.values[keep:], self._minutes)
        self._base, self._from_ms = base, start_ms
        return base

    def invalidate(self) -> None:
        self._base = None
