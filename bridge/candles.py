"""Resample stored base candles into any requested timeframe, in the database.

The tick emitter stores one base timeframe (``min_timeframe``), the bundled history is hourly, and
the client may ask for anything from 5m to 1d: aggregating in SQL keeps the transfer to the bars
actually shown. Buckets are aligned to the Unix epoch (so 1d bars start at 00:00 UTC, 4h bars at
00/04/08...), the same alignment the tick emitter uses for "which timeframes close now".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select, text
from sqlalchemy.orm import Session

from bridge.schemas import CandleOut
from common.db.models import Candle
from common.timeframes import format_timeframe, parse_timeframe

#: Stored timeframes probed, coarsest first; the coarsest one that divides the request wins.
CANDIDATE_SOURCES = ("1d", "12h", "4h", "2h", "1h", "30m", "15m", "5m", "1m")

_RESAMPLE = text(
    """
    SELECT to_timestamp(floor(extract(epoch FROM open_time) / :step) * :step) AS bucket,
           (array_agg(open ORDER BY open_time))[1] AS open,
           max(high) AS high,
           min(low) AS low,
           (array_agg(close ORDER BY open_time DESC))[1] AS close,
           sum(volume) AS volume,
           count(*) AS n
    FROM candles
    WHERE symbol = :symbol AND timeframe = :source AND open_time >= :start AND open_time < :end
    GROUP BY bucket
    ORDER BY bucket DESC
    LIMIT :limit
    """
)

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def source_timeframe(session: Session, symbol: str, minutes: int, extra: str | None = None) -> str | None:
    """Coarsest stored timeframe that divides ``minutes`` (index probes, no table scan)."""
    candidates = {parse_timeframe(tf): tf for tf in CANDIDATE_SOURCES}
    if extra:
        candidates.setdefault(parse_timeframe(extra), format_timeframe(parse_timeframe(extra)))
    for length in sorted(candidates, reverse=True):
        if length > minutes or minutes % length:
            continue
        tf = candidates[length]
        if session.scalar(select(exists().where(Candle.symbol == symbol, Candle.timeframe == tf))):
            return tf
    return None


def _shift(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta`` clamped to the epoch..year 9999 range (odd query values must not 500)."""
    try:
        return max(moment + delta, _EARLIEST)
    except OverflowError:
        return _EARLIEST if delta.total_seconds() < 0 else datetime(9999, 1, 1, tzinfo=UTC)


def resample(
    session: Session,
    *,
    symbol: str,
    minutes: int,
    source: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[CandleOut]:
    """Up to ``limit`` bars ending before ``end`` (default: after the newest stored candle)."""
    base = parse_timeframe(source)
    if end is None:
        newest = session.scalar(
            select(Candle.open_time)
            .where(Candle.symbol == symbol, Candle.timeframe == source)
            .order_by(Candle.open_time.desc())
            .limit(1)
        )
        if newest is None:
            return []
        end = _shift(newest, timedelta(minutes=base))
    end = _as_utc(end)
    start = _as_utc(start) if start is not None else _shift(end, -timedelta(minutes=minutes * limit))
    rows = session.execute(
        _RESAMPLE,
        {
            "step": minutes * 60,
            "symbol": symbol,
            "source": source,
            "start": start,
            "end": end,
            "limit": limit,
        },
    ).all()
    per_bar = minutes // base
    return [
        CandleOut(
            open_time=r.bucket,
            open=r.open,
            high=r.high,
            low=r.low,
            close=r.close,
            volume=r.volume,
            complete=r.n >= per_bar,
        )
        for r in reversed(rows)
    ]


def _as_utc(moment: datetime) -> datetime:
    """Naive query datetimes are read as UTC, the only zone the system uses."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
