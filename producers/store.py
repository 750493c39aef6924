"""Candle persistence: idempotent inserts, rejection audit rows, pruning, range reads.

Inserts use ``INSERT ... ON CONFLICT DO NOTHING`` so any sync can be re-run, interrupted or run
concurrently without double rows; a stored candle is never overwritten, and a later different
version of it is refused and recorded instead (history must not change under a strategy's feet).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert

from common.db.models import Candle, CandleRejection
from common.events import from_epoch_ms
from producers.candles import RawCandle
from producers.validation import Reason, Rejection

CHUNK = 5_000


def insert_candles(
    engine: Engine, symbol: str, timeframe: str, candles: Sequence[RawCandle], source: str
) -> tuple[int, list[Rejection]]:
    """Insert new candles; return how many were new and the conflicts with differing stored values."""
    inserted = 0
    conflicts: list[Rejection] = []
    with engine.begin() as conn:
        for i in range(0, len(candles), CHUNK):
            chunk = candles[i : i + CHUNK]
            rows = [
                {"symbol": symbol, "timeframe": timeframe, "open_time": c.open_time, "open": c.open,
                 "high": c.high, "low": c.low, "close": c.close, "volume": c.volume, "source": source}
                for c in chunk
            ]
            stmt = insert(Candle).on_conflict_do_nothing().returning(Candle.open_time)
            new = {t for (t,) in conn.execute(stmt, rows)} if rows else set()
            inserted += len(new)
            skipped = [c for c in chunk if c.open_time not in new]
            if not skipped:
                continue
            stored = conn.execute(
                select(Candle.open_time, Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume)
                .where(Candle.symbol == symbol, Candle.timeframe == timeframe,
                       Candle.open_time.in_([c.open_time for c in skipped]))
            ).all()
            by_time = {r[0]: tuple(r[1:]) for r in stored}
            conflicts += [
                Rejection(c, Reason.CONFLICTS_WITH_STORED)
                for c in skipped
                if by_time.get(c.open_time) is not None and by_time[c.open_time] != c.values()
            ]
    return inserted, conflicts


def record_rejections(
    engine: Engine, symbol: str, timeframe: str, rejections: Sequence[Rejection], source: str
) -> None:
    """One audit row per refused candle, raw values kept verbatim (NaN included)."""
    if not rejections:
        return
    rows = [
        {"symbol": symbol, "timeframe": timeframe, "open_time": _safe_time(r.candle.open_time_ms),
         "raw": r.candle.as_raw(), "reason": r.reason.value, "source": source}
        for r in rejections
    ]
    with engine.begin() as conn:
        conn.execute(insert(CandleRejection), rows)


def _safe_time(ms: int) -> datetime | None:
    try:
        return from_epoch_ms(ms)
    except (OverflowError, ValueError):
        return None


def last_open_time(engine: Engine, symbol: str, timeframe: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(
            select(func.max(Candle.open_time)).where(Candle.symbol == symbol, Candle.timeframe == timeframe)
        ).scalar_one()


def prune(engine: Engine, symbol: str, timeframe: str, before: datetime, source: str) -> int:
    """Delete ``source``'s candles older than ``before``; other sources' rows (CSV history) stay."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(Candle).where(
                Candle.symbol == symbol, Candle.timeframe == timeframe, Candle.source == source,
                Candle.open_time < before,
            )
        )
    return result.rowcount or 0


_ARRAYS_SQL = text(
    "SELECT (extract(epoch FROM open_time) * 1000)::bigint, open, high, low, close, volume "
    "FROM candles WHERE symbol = :symbol AND timeframe = :tf AND open_time >= :start AND open_time < :end "
    "ORDER BY open_time"
)


def load_arrays(
    engine: Engine, symbol: str, timeframe: str, start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Candles in ``[start, end)`` as (int64 epoch-ms times, float64 [n, 5] OHLCV), oldest first.

    Epoch milliseconds come from SQL so no per-row datetime objects are built: this read is on the
    tick's critical path.
    """
    with engine.connect() as conn:
        rows = conn.execute(_ARRAYS_SQL, {"symbol": symbol, "tf": timeframe, "start": start, "end": end}).all()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, 5), dtype=np.float64)
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 0].astype(np.int64), np.ascontiguousarray(arr[:, 1:])


def open_times_ms(engine: Engine, symbol: str, timeframe: str, start: datetime, end: datetime) -> list[int]:
    times, _ = load_arrays(engine, symbol, timeframe, start, end)
    return times.tolist()
